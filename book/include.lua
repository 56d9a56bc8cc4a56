--[[
include.lua: puts the real code and the real output into the book.

A chapter never pastes code. It writes an empty code block that names
what to show, and this filter replaces it when the book is built:

  ```{.c include="steps/04-accept/server.c"}```                 the whole file
  ```{.c include="steps/04-accept/server.c" region="serve_forever"}```
      one function (or struct), from the comment above it to its
      closing brace at column 0; in any file of a step: server.c, and
      from step 05 on the parser's http.c and http.h
  ```{.c include="steps/05-parse/http.h" region="parse_head"}```
      a declaration, from the comment above it to its semicolon: a
      prototype, or an object declared extern ("NOT_REJECTED")
  ```{.c include="steps/02-bind/server.c" region="enum {"}```
      the same, for a declaration found by how its first line starts
      ("enum {", "struct request", "enum method", "#define
      DEFAULT_ADDRESS", "#endif")
  ```{.c include="steps/05-parse/server.c" region="receive, receive_more"}```
      several regions, in the order named, in one listing
  ```{.c include="steps/01-socket/server.c" region="top"}```
      the top of the file: its opening comment through the last #include
      (for a header, its include guard's #ifndef and #define too)
  ```{.diff diff="steps/03-listen/server.c steps/04-accept/server.c"}```
      diff -u between two files
  ```{.diff diff="steps/04-accept steps/05-parse"}```
      diff -ruN between two step folders: every file of each, a file
      that one lacks as empty, so that a new file shows all added
  ```{.diff diff="steps/04-accept/server.c steps/05-parse/server.c" region="serve_forever"}```
      diff -u of one region (or several) between two files, with the
      whole region as context (context="N": N lines); one of several
      regions may be new, as long as one is in the first file. A
      region is in a file: between folders, name the files
  ```{.diff diff="steps/04-accept steps/05-parse" show="command"}```
      not the diff but the command that prints it (diff -ruN for two
      folders, diff -u for two files), how many lines it adds and
      removes in all its files, and in the HTML a link to the page that
      shows it (diff-05.html: book/build writes one for every step)
  ```{.console transcript="step04-nc"}```
      book/transcripts/step04-nc.txt: what book/transcript printed for
      that scene, real commands run against the real servers (make
      transcripts plays them again; tests/transcripts.bats checks that
      they are what the servers print now)
  ```{chart="book/bench/results.tsv"}```
      the benchmark's bar chart, drawn as SVG from the results that
      make bench wrote (book/chart.lua)
  ```{bench="medians"}```   []{.bench value="ratio step09 nginx keep-alive 16"}
      a table, or a value in a sentence, computed from book/bench/*.tsv
      (book/bench.lua says which)

A chapter teaches a step in pieces, each shown once. Each listing of a
step's code says where its lines go, among what the reader has typed
so far (the same file in the step before, and the listings of that
file above it in the chapter), between the nearest declarations or
banners above and below it: "new, between `next_line` and
`parse_request_line`", "new, between `read_head` and the banner
`/* ==== The body, and the whole request ==== */`", "in `enum {`: add
the + lines". A chapter can say it its own way, with
where="new, in place of `wait_for_interrupt`". The first piece of a
section the step adds comes with the section's banner comment,
/* ==== Connections ==== */.

A file that the step before lacks (http.c and http.h in step 05) is
new: the first listing of it in a chapter says "new file
`steps/05-parse/http.c`" (or "new file", for the whole of it), and the
later ones where they go in it, among its listings above: "new, in
`http.c`, between `rejected` and `skip_empty_lines`". The steps, and
which one comes before which, are those of steps/list (tests/steps).

Paths are relative to the top of the repository (book/build runs pandoc
there). A missing file, region or scene stops the build with a message
that names it.
]]

local chapter = (PANDOC_STATE.input_files or {})[1] or "stdin"

local function fail(message)
  io.stderr:write("include.lua: " .. chapter .. ": " .. message .. "\n")
  os.exit(1)
end

local function exists(path)
  local file = io.open(path, "r")
  if file then
    file:close()
    return true
  end
  return false
end

local files = {}
local function read_lines(path)
  if files[path] then
    return files[path]
  end
  local file = io.open(path, "r")
  if not file then
    fail("no such file: " .. path)
  end
  local lines = {}
  for line in file:lines() do
    lines[#lines + 1] = line
  end
  file:close()
  files[path] = lines
  return lines
end

local function run(command)
  local pipe = io.popen(command .. " 2>&1")
  local output = pipe:read("a")
  local _, _, code = pipe:close()
  return output, code
end

local function escape_pattern(text)
  return (text:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function split_names(text)
  local names = {}
  for name in text:gmatch("[^,]+") do
    names[#names + 1] = name:match("^%s*(.-)%s*$")
  end
  return names
end

-- Does this line, at column 0, start the declaration called `name`?
-- A function: "static int accept_connection(" or "int main(".
-- A struct: "struct request {". A constant: "static const char HELLO_PAGE[] =".
-- Anything else: a literal prefix, such as "enum {" or "#define DEFAULT_ADDRESS".
local function starts_region(line, name)
  if line:match("^%s") or line == "" then
    return false
  end
  if name:match("^[%a_][%w_]*$") then
    local n = escape_pattern(name)
    return line:match("^[%a_].-[%s%*]" .. n .. "%(") ~= nil
      or line:match("^[%a_].-[%s%*]" .. n .. "%s*[%[=;]") ~= nil
      or line:match("^struct " .. n .. " {") ~= nil
      or line:match("^enum " .. n .. " {") ~= nil
  end
  return line:sub(1, #name) == name
end

local function is_banner(line)
  return line ~= nil and line:match("^/%* ==== .* ==== %*/$") ~= nil
end

-- Returns the first and last line of a region, and the line where its
-- declaration starts, or nil if the file has none of that name: the
-- comment block right above the declaration, through the brace that
-- closes it at column 0 (or the declaration's own line, if it ends with
-- a semicolon or is a #define).
local function find_region(lines, name, path)
  if name == "top" then
    local last
    for i, line in ipairs(lines) do
      if line:match("^#include") then
        last = i
      end
    end
    if not last then
      fail("no #include in " .. path .. ", so no region 'top'")
    end
    return 1, last, 1
  end
  local start
  for i, line in ipairs(lines) do
    if starts_region(line, name) then
      start = i
      break
    end
  end
  if not start then
    return nil
  end
  local finish
  if lines[start]:match(";%s*$") or lines[start]:match("^#") then
    finish = start
  else
    -- A declaration whose parameters go on over several lines: a
    -- prototype ends at its semicolon, a definition goes on to its body.
    if lines[start]:match("%(") and not lines[start]:match("[{)]%s*$") then
      for i = start + 1, #lines do
        if lines[i]:match(";%s*$") then
          finish = i
          break
        elseif lines[i]:match("[{)]%s*$") then
          break
        end
      end
    end
    -- A brace that opens another one, "} MEDIA_TYPES[] = {" after a struct
    -- type, goes on to the brace that closes the array.
    if not finish then
      for i = start, #lines do
        if lines[i]:match("^}") and not lines[i]:match("{%s*$") then
          finish = i
          break
        end
      end
    end
  end
  if not finish then
    fail("'" .. name .. "' in " .. path .. " has no closing brace at column 0")
  end
  local first = start
  if first > 1 and lines[first - 1]:match("%*/%s*$") and not is_banner(lines[first - 1]) then
    first = first - 1
    while first > 1 and not lines[first]:match("^%s*/%*") do
      first = first - 1
    end
  end
  return first, finish, start
end

local function must_find_region(lines, name, path)
  local first, last, start = find_region(lines, name, path)
  if not first then
    fail("no function or declaration '" .. name .. "' in " .. path)
  end
  return first, last, start
end

-- The text of several line ranges, in the order given: ranges that
-- follow each other in the file keep what lies between them (blank
-- lines), the others are set apart by one blank line. Also returns the
-- ranges as the label shows them, with neighbours joined, and the line
-- number in the file of each line of the text (false for a blank line
-- that sets two ranges apart).
local function ranges_text(lines, ranges)
  local parts, shown, previous, numbers = {}, {}, nil, {}
  for _, range in ipairs(ranges) do
    local first, last = range[1], range[2]
    local joined = false
    if previous and first > previous then
      joined = true
      for i = previous + 1, first - 1 do
        if lines[i] ~= "" then
          joined = false
        end
      end
    end
    if joined then
      first = previous + 1
      shown[#shown][2] = last
    else
      if previous then
        parts[#parts + 1] = ""
        numbers[#numbers + 1] = false
      end
      shown[#shown + 1] = { first, last }
    end
    parts[#parts + 1] = table.concat(lines, "\n", first, last)
    for i = first, last do
      numbers[#numbers + 1] = i
    end
    previous = last
  end
  return table.concat(parts, "\n"), shown, numbers
end

-- The line of the file that line n of a ranges_text is: 0 is the line
-- before the first, and a blank line between two ranges counts as the
-- line after the one above it.
local function file_line(numbers, n)
  if n == 0 then
    return (numbers[1] or 1) - 1
  end
  for i = math.min(n, #numbers), 1, -1 do
    if numbers[i] then
      return numbers[i] + (n - i)
    end
  end
  return n
end

local function ranges_label(path, ranges)
  local texts = {}
  for i, range in ipairs(ranges) do
    texts[i] = range[1] == range[2] and tostring(range[1]) or string.format("%d–%d", range[1], range[2])
  end
  local one_line = #ranges == 1 and ranges[1][1] == ranges[1][2]
  return string.format("%s, line%s %s", path, one_line and "" or "s", table.concat(texts, ", "))
end

-- The steps' folders, in the order of steps/list (tests/steps reads it):
-- { ["05"] = "steps/05-parse", ... }, and each step's number before it.
local step_folders, step_before
local function read_steps()
  if step_folders then
    return
  end
  step_folders, step_before = {}, {}
  local numbers, code = run("tests/steps")
  if code ~= 0 then
    fail("tests/steps failed: " .. numbers)
  end
  local last
  for number in numbers:gmatch("%d%d") do
    local folder = run("tests/steps --folder " .. number):match("^(%S+)")
    step_folders[number] = folder
    step_before[number] = last
    last = number
  end
end

-- The folder of the step before the one a path is in: steps/04-accept
-- for steps/05-parse/http.c. Nil for the first step, and for a path
-- outside steps/.
local function previous_folder(path)
  local number = path:match("^steps/(%d%d)%-[^/]+/")
  if not number then
    return nil
  end
  read_steps()
  return step_folders[step_before[number] or ""]
end

-- steps/05-parse/server.c -> steps/04-accept/server.c, or nil if the
-- step before has no such file.
local function previous_step(path)
  local folder, file = previous_folder(path), path:match("^steps/[^/]+/(.+)$")
  if folder and exists(folder .. "/" .. file) then
    return folder .. "/" .. file
  end
  return nil
end

-- A file that its step adds: steps/05-parse/http.c, which step 04 lacks.
local function is_new_file(path)
  return previous_folder(path) ~= nil and previous_step(path) == nil
end

local function is_folder(path)
  local _, code = run("test -d '" .. path .. "'")
  return code == 0
end

local function step_number(path)
  return path:match("^steps/(%d%d)%-")
end

-- The name a reader knows a declaration by: a function's, a struct's, a
-- constant's, or "enum {" for the limits.
local function declaration_name(line)
  if line:match("^enum {%s*$") then
    return "enum {"
  elseif line:match("^#endif") then
    return "#endif"
  end
  local kind, tag = line:match("^(%a+) ([%a_][%w_]*) {")
  if kind == "struct" or kind == "enum" then
    return kind .. " " .. tag
  end
  return line:match("^#define ([%a_][%w_]*)")
    or line:match("^enum { ([%a_][%w_]*)")
    or line:match("([%a_][%w_]*)%(")
    or line:match("([%a_][%w_]*)%s*%[%]")
    or line:match("([%a_][%w_]*)%s*=")
    or line:match("([%a_][%w_]*)%s*;%s*$")
end

-- The map of a file: where each declaration after the includes starts,
-- with its name, and the banner of each line's section (its line
-- number, or 0).
local maps = {}
local function file_map(path)
  if maps[path] then
    return maps[path]
  end
  local lines = read_lines(path)
  local map = { declarations = {}, section = {} }
  local in_comment, banner = false, 0
  local _, includes_end = find_region(lines, "top", path)
  for i, line in ipairs(lines) do
    if i <= includes_end then
      -- the opening comment, the feature macro and the includes
    elseif in_comment then
      in_comment = not line:match("%*/")
    elseif is_banner(line) then
      banner = i
    elseif line:match("^%s*/%*") then
      in_comment = not line:match("%*/")
    elseif line:match("^[%a_#]") then
      local name = declaration_name(line)
      if name then
        map.declarations[#map.declarations + 1] = { line = i, name = name }
      end
    end
    map.section[i] = banner
  end
  maps[path] = map
  return map
end

-- What the reader has typed so far, in the order of the chapter: the
-- lines where the declarations it has shown start, and the banners.
local typed = {}
local function typed_in(path)
  typed[path] = typed[path] or { declarations = {}, banners = {} }
  return typed[path]
end

local function as_set(lines)
  local set = {}
  for _, line in ipairs(lines) do
    set[line] = true
  end
  return set
end

-- Has the reader got this line of the step's file already: from the
-- step before, or from a listing higher up in this chapter?
local function reader_has(path, old_set, line_number)
  return old_set[read_lines(path)[line_number]] or typed_in(path).declarations[line_number]
end

local function code_name(name)
  return "`" .. name .. "`"
end

local function join_names(names)
  local quoted = {}
  for i, name in ipairs(names) do
    quoted[i] = code_name(name)
  end
  if #quoted <= 1 then
    return quoted[1] or ""
  end
  return table.concat(quoted, ", ", 1, #quoted - 1) .. " and " .. quoted[#quoted]
end

-- Where a new declaration goes, among what the reader already has: the
-- declarations and the banners that the step before or the listings
-- above typed. It names the nearest one above it and the nearest one
-- below, "between `next_line` and `parse_request_line`", so that the
-- place is one place even when several pieces came after the same one;
-- a banner is named by its text, "between `read_head` and the banner
-- `/* ==== The body, and the whole request ==== */`". A declaration that
-- brings its section's banner (new_banner, that banner's line) goes
-- there "with its banner".
local function place_of(path, old_set, start, new_banner)
  local map = file_map(path)
  local lines = read_lines(path)
  local mine = typed_in(path)
  local above, below
  local function consider(line, name)
    if line < start and (not above or line > above.line) then
      above = { line = line, name = name }
    elseif line > start and (not below or line < below.line) then
      below = { line = line, name = name }
    end
  end
  for _, declaration in ipairs(map.declarations) do
    if reader_has(path, old_set, declaration.line) then
      consider(declaration.line, code_name(declaration.name))
    end
  end
  for i, line in ipairs(lines) do
    if is_banner(line) and i ~= new_banner and (old_set[line] or mine.banners[i]) then
      consider(i, "the banner " .. code_name(line))
    end
  end
  local place
  if above and below then
    place = "between " .. above.name .. " and " .. below.name
  elseif above then
    place = "after " .. above.name
  elseif below then
    place = "before " .. below.name
  else
    place = "after the includes"
  end
  if new_banner then
    return "with its banner, " .. place
  end
  return place
end

-- The ranges an include shows, and where they go: each region, with its
-- section's banner when the reader has not typed that banner yet.
local function include_ranges(path, names)
  local lines = read_lines(path)
  local previous = previous_step(path)
  local old = previous and read_lines(previous) or {}
  local old_set = as_set(old)
  local map = file_map(path)
  local mine = typed_in(path)
  local new_file = is_new_file(path)
  local ranges, new_places, changed, same = {}, {}, {}, {}
  for _, name in ipairs(names) do
    local first, last, start = must_find_region(lines, name, path)
    local banner, new_banner = map.section[start], nil
    -- The banner goes with the section's first piece: not with a new
    -- function that comes after code the reader has in that section.
    local after_old = false
    for _, declaration in ipairs(map.declarations) do
      if declaration.line > banner and declaration.line < start
        and reader_has(path, old_set, declaration.line) then
        after_old = true
      end
    end
    if banner > 0 and not after_old and not old_set[lines[banner]] and not mine.banners[banner] then
      mine.banners[banner] = true
      new_banner = banner
      ranges[#ranges + 1] = { banner, banner }
    end
    ranges[#ranges + 1] = { first, last }
    if new_file then
      if #new_places == 0 then
        new_places[1] = place_of(path, old_set, start, new_banner)
      end
    elseif previous then
      local old_first, old_last = find_region(old, name, previous)
      if not old_first then
        if #new_places == 0 then
          new_places[1] = place_of(path, old_set, start, new_banner)
        end
      elseif table.concat(old, "\n", old_first, old_last) ~= table.concat(lines, "\n", first, last) then
        changed[#changed + 1] = name
      else
        same[#same + 1] = name
      end
    end
    mine.declarations[start] = true
  end
  local where
  if new_file and not mine.shown then
    where = "new file " .. code_name(path)
  elseif new_file then
    where = "new, in " .. code_name(path:match("[^/]+$")) .. ", " .. new_places[1]
  elseif previous then
    local step = step_number(previous)
    local says = {}
    if #new_places > 0 then
      says[#says + 1] = "new, " .. new_places[1]
    end
    if #changed > 0 then
      says[#says + 1] = "replaces " .. join_names(changed) .. " of step " .. step
    end
    if #same > 0 then
      says[#says + 1] = join_names(same) .. " as in step " .. step
    end
    where = table.concat(says, "; ")
  end
  mine.shown = true
  return ranges, where
end

-- Where the lines of a region diff go.
local function where_changed(old_lines, old_path, names, diff_text)
  local removes = diff_text:match("\n%-") or diff_text:match("^%-")
  local new_names, changed = {}, {}
  for _, name in ipairs(names) do
    if find_region(old_lines, name, old_path) then
      changed[#changed + 1] = name
    else
      new_names[#new_names + 1] = name
    end
  end
  local places, others = {}, {}
  for _, name in ipairs(changed) do
    if name == "top" then
      places[#places + 1] = "at the top of the file"
    else
      others[#others + 1] = name
    end
  end
  if #others > 0 then
    places[#places + 1] = "in " .. join_names(others)
  end
  local says = table.concat(places, " and ")
  if #new_names > 0 then
    says = says .. ", and the new " .. join_names(new_names)
  end
  if removes then
    return says .. ": the − lines become the + lines"
  end
  return says .. ": add the + lines"
end

local function markdown_inlines(text)
  local blocks = pandoc.read(text, "markdown").blocks
  if #blocks == 0 then
    return {}
  end
  return blocks[1].content
end

-- A listing: where it goes (if known), then the file and the lines.
local function caption(label, where, block)
  local inlines = {}
  if where and where ~= "" then
    inlines[#inlines + 1] = pandoc.Span(markdown_inlines(where), pandoc.Attr("", { "where" }))
    inlines[#inlines + 1] = pandoc.Space()
    inlines[#inlines + 1] = pandoc.Str("·")
    inlines[#inlines + 1] = pandoc.Space()
  end
  inlines[#inlines + 1] = pandoc.Code(label)
  return pandoc.Div({ pandoc.Para(inlines), block }, pandoc.Attr("", { "listing" }))
end

local function write_file(text)
  local path = os.tmpname()
  local file = io.open(path, "w")
  file:write(text, "\n")
  file:close()
  return path
end

-- diff -u between two texts made by ranges_text: returns the output
-- without its two header lines, with the @@ line numbers of the files
-- the texts come from (old_numbers and new_numbers, from ranges_text),
-- and without the @@ line when the one hunk is the whole text.
local function diff_texts(old_text, new_text, context, old_numbers, new_numbers, what)
  local old_file, new_file = write_file(old_text), write_file(new_text)
  local output, code = run(string.format("diff -U %d %s %s", context, old_file, new_file))
  os.remove(old_file)
  os.remove(new_file)
  if code ~= 0 and code ~= 1 then
    fail("diff of " .. what .. " failed: " .. output)
  end
  if output == "" then
    fail(what .. ": no difference, nothing to show")
  end
  local out, hunks = {}, 0
  for line in (output:gsub("\n$", "") .. "\n"):gmatch("(.-)\n") do
    if line:match("^%-%-%- ") or line:match("^%+%+%+ ") then
      -- the temporary files' names
    elseif line:match("^@@") then
      hunks = hunks + 1
      local a, b, c, d = line:match("^@@ %-(%d+),?(%d*) %+(%d+),?(%d*) @@")
      out[#out + 1] = string.format("@@ -%d%s +%d%s @@", file_line(old_numbers, tonumber(a)),
        b ~= "" and "," .. b or "", file_line(new_numbers, tonumber(c)), d ~= "" and "," .. d or "")
    else
      out[#out + 1] = line
    end
  end
  while #out > 0 and out[#out]:match("^ %s*$") do
    table.remove(out)
  end
  if hunks == 1 and context >= 1000 then
    table.remove(out, 1)
  end
  return table.concat(out, "\n")
end

local function include_block(block)
  local attributes = block.attributes
  local path = attributes.include
  local lines = read_lines(path)
  local text, label, where
  if attributes.region then
    local ranges
    ranges, where = include_ranges(path, split_names(attributes.region))
    text, ranges = ranges_text(lines, ranges)
    label = ranges_label(path, ranges)
  else
    text, label = table.concat(lines, "\n"), path
  end
  if not attributes.region and is_new_file(path) then
    -- The whole of a new file: the reader has typed all of it.
    where = "new file"
    local mine = typed_in(path)
    mine.shown = true
    for _, declaration in ipairs(file_map(path).declarations) do
      mine.declarations[declaration.line] = true
    end
    for i, line in ipairs(lines) do
      if is_banner(line) then
        mine.banners[i] = true
      end
    end
  end
  return caption(label, attributes.where or where, pandoc.CodeBlock(text, pandoc.Attr("", block.classes)))
end

-- The ranges of the regions named, in a file, and those it lacks.
local function regions_in(lines, names, path, optional)
  local ranges = {}
  for _, name in ipairs(names) do
    local first, last, start = find_region(lines, name, path)
    if first then
      ranges[#ranges + 1] = { first, last }
      typed_in(path).declarations[start] = true
      typed_in(path).shown = true
    elseif not optional then
      fail("no function or declaration '" .. name .. "' in " .. path)
    end
  end
  return ranges
end

local function whole_diff_summary(command, new, output)
  local added, removed = 0, 0
  for line in output:gmatch("[^\n]*") do
    if line:match("^%+") and not line:match("^%+%+%+ ") then
      added = added + 1
    elseif line:match("^%-") and not line:match("^%-%-%- ") then
      removed = removed + 1
    end
  end
  local inlines = {
    pandoc.Code(command),
    pandoc.Str(string.format(": %d lines added, %d removed.", added, removed)),
  }
  local number = step_number(new)
  if number then
    inlines[#inlines + 1] = pandoc.Space()
    inlines[#inlines + 1] = pandoc.Span({ pandoc.Link("Read it on one page.", "diff-" .. number .. ".html") },
      pandoc.Attr("", { "html-only" }))
  end
  return pandoc.Div({ pandoc.Para(inlines) }, pandoc.Attr("", { "whole-diff" }))
end

local function diff_block(block)
  local attributes = block.attributes
  local old, new = attributes.diff:match("^(%S+)%s+(%S+)$")
  if not old then
    fail('diff="' .. attributes.diff .. '" must name two files, or two folders')
  end
  for _, path in ipairs({ old, new }) do
    if not exists(path) then
      fail("no such file: " .. path)
    end
  end
  local folders = is_folder(old) and is_folder(new)
  if folders ~= (is_folder(old) or is_folder(new)) then
    fail('diff="' .. attributes.diff .. '": two files, or two folders, not one of each')
  end
  if attributes.region then
    if folders then
      fail('diff="' .. attributes.diff .. '" region="' .. attributes.region
        .. '": a region is in a file; name the two files')
    end
    local names = split_names(attributes.region)
    local old_lines, new_lines = read_lines(old), read_lines(new)
    local new_text, new_ranges, new_numbers = ranges_text(new_lines, regions_in(new_lines, names, new, false))
    local old_text, old_ranges, old_numbers = ranges_text(old_lines, regions_in(old_lines, names, old, true))
    if #old_ranges == 0 then
      fail("none of '" .. attributes.region .. "' is in " .. old .. ": show new code with include=, not diff=")
    end
    local context = tonumber(attributes.context or "") or 100000
    local text = diff_texts(old_text, new_text, context, old_numbers, new_numbers,
      "'" .. attributes.region .. "' between " .. old .. " and " .. new)
    local where = attributes.where or where_changed(old_lines, old, names, text)
    return caption(ranges_label(new, new_ranges), where, pandoc.CodeBlock(text, pandoc.Attr("", { "diff" })))
  end
  -- Two folders: every file of each, a file that one lacks as empty (-N),
  -- so that a new file shows as all added; without the files' dates,
  -- which change with every checkout.
  local command = folders and string.format("diff -ruN %s %s", old, new)
    or string.format("diff -u %s %s", old, new)
  local output, code
  if folders then
    output, code = run(command)
    output = output:gsub("\n([%-%+][%-%+][%-%+] [^\t\n]*)\t[^\n]*", "\n%1")
  else
    output, code = run(string.format("diff -u --label %s --label %s %s %s", old, new, old, new))
  end
  if code ~= 0 and code ~= 1 then
    fail(command .. " failed: " .. output)
  end
  if output == "" then
    fail(old .. " and " .. new .. " are the same: nothing to show")
  end
  if attributes.show == "command" then
    return whole_diff_summary(command, new, output)
  elseif attributes.show then
    fail('show="' .. attributes.show .. '": the only choice is show="command"')
  end
  return caption(command, attributes.where,
    pandoc.CodeBlock((output:gsub("\n$", "")), pandoc.Attr("", { "diff" })))
end

-- A transcript, as kept in book/transcripts/ (make transcripts plays
-- the scenes of book/transcript again against the servers).
local function transcript_block(block)
  local path = "book/transcripts/" .. block.attributes.transcript .. ".txt"
  if not exists(path) then
    fail("no transcript " .. path .. ": a scene of book/transcript? then run make transcripts")
  end
  local output = table.concat(read_lines(path), "\n")
  return pandoc.CodeBlock(output, pandoc.Attr("", { "console" }))
end

-- The benchmark's chart (book/chart.lua) and its tables and values
-- (book/bench.lua), beside this file.
local here = pandoc.path.directory(PANDOC_SCRIPT_FILE)
local bench = dofile(pandoc.path.join({ here, "bench.lua" }))
local chart = dofile(pandoc.path.join({ here, "chart.lua" }))(bench)

function Span(span)
  if span.classes:includes("bench") then
    return bench.inline(span, fail)
  end
end

function CodeBlock(block)
  if block.attributes.chart then
    return chart.block(block, fail)
  elseif block.attributes.bench then
    return bench.block(block, fail)
  elseif block.attributes.include then
    return include_block(block)
  elseif block.attributes.diff then
    return diff_block(block)
  elseif block.attributes.transcript then
    return transcript_block(block)
  end
end
