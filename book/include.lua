--[[
include.lua: puts the real code and the real output into the book.

A chapter never pastes code. It writes an empty code block that names
what to show, and this filter replaces it when the book is built:

  ```{.c include="steps/04-accept/server.c"}```                 the whole file
  ```{.c include="steps/04-accept/server.c" region="serve_forever"}```
      one function (or struct), from the comment above it to its
      closing brace at column 0
  ```{.c include="steps/02-bind/server.c" region="enum {"}```
      the same, for a declaration found by how its first line starts
  ```{.diff diff="steps/03-listen/server.c steps/04-accept/server.c"}```
      diff -u between two files
  ```{.console transcript="step04-nc"}```
      book/transcripts/step04-nc.txt: what book/transcript printed for
      that scene, real commands run against the real servers (make
      transcripts plays them again; tests/transcripts.bats checks that
      they are what the servers print now)

Paths are relative to the top of the repository (book/build runs pandoc
there). A missing file, region or scene stops the build with a message
that names it.
]]

local chapter = (PANDOC_STATE.input_files or {})[1] or "stdin"

local function fail(message)
  io.stderr:write("include.lua: " .. chapter .. ": " .. message .. "\n")
  os.exit(1)
end

local function read_lines(path)
  local file = io.open(path, "r")
  if not file then
    fail("no such file: " .. path)
  end
  local lines = {}
  for line in file:lines() do
    lines[#lines + 1] = line
  end
  file:close()
  return lines
end

local function escape_pattern(text)
  return (text:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- Does this line, at column 0, start the declaration called `name`?
-- A function: "static int accept_connection(" or "int main(".
-- A struct: "struct request {". Anything else: a literal prefix.
local function starts_region(line, name)
  if line:match("^%s") or line == "" then
    return false
  end
  if name:match("^[%a_][%w_]*$") then
    local n = escape_pattern(name)
    return line:match("^[%a_].-[%s%*]" .. n .. "%(") ~= nil
      or line:match("^struct " .. n .. " {") ~= nil
      or line:match("^enum " .. n .. " {") ~= nil
  end
  return line:sub(1, #name) == name
end

-- Returns the first and last line of a region: the comment block right
-- above the declaration, through the brace that closes it at column 0
-- (or the declaration's own line, if it ends with a semicolon).
local function find_region(lines, name, path)
  local start
  for i, line in ipairs(lines) do
    if starts_region(line, name) then
      start = i
      break
    end
  end
  if not start then
    fail("no function or declaration '" .. name .. "' in " .. path)
  end
  local finish
  if lines[start]:match(";%s*$") then
    finish = start
  else
    for i = start, #lines do
      if lines[i]:match("^}") then
        finish = i
        break
      end
    end
  end
  if not finish then
    fail("'" .. name .. "' in " .. path .. " has no closing brace at column 0")
  end
  local first = start
  if first > 1 and lines[first - 1]:match("%*/%s*$") then
    first = first - 1
    while first > 1 and not lines[first]:match("^%s*/%*") do
      first = first - 1
    end
  end
  return first, finish
end

local function run(command)
  local pipe = io.popen(command .. " 2>&1")
  local output = pipe:read("a")
  local _, _, code = pipe:close()
  return output, code
end

local function caption(text, block)
  return pandoc.Div({ pandoc.Para({ pandoc.Code(text) }), block }, pandoc.Attr("", { "listing" }))
end

local function exists(path)
  local file = io.open(path, "r")
  if file then
    file:close()
    return true
  end
  return false
end

function CodeBlock(block)
  local attributes = block.attributes
  local classes = block.classes

  if attributes.include then
    local path = attributes.include
    local lines = read_lines(path)
    local first, last, label = 1, #lines, path
    if attributes.region then
      first, last = find_region(lines, attributes.region, path)
      label = string.format("%s, lines %d–%d", path, first, last)
    end
    local text = table.concat(lines, "\n", first, last)
    return caption(label, pandoc.CodeBlock(text, pandoc.Attr("", classes)))
  end

  if attributes.diff then
    local old, new = attributes.diff:match("^(%S+)%s+(%S+)$")
    if not old then
      fail('diff="' .. attributes.diff .. '" must name two files')
    end
    for _, path in ipairs({ old, new }) do
      if not exists(path) then
        fail("no such file: " .. path)
      end
    end
    local output, code = run(string.format("diff -u --label %s --label %s %s %s", old, new, old, new))
    if code ~= 0 and code ~= 1 then
      fail("diff " .. old .. " " .. new .. " failed: " .. output)
    end
    if output == "" then
      fail(old .. " and " .. new .. " are the same: nothing to show")
    end
    return caption("diff -u " .. old .. " " .. new,
      pandoc.CodeBlock((output:gsub("\n$", "")), pandoc.Attr("", { "diff" })))
  end

  if attributes.transcript then
    local path = "book/transcripts/" .. attributes.transcript .. ".txt"
    if not exists(path) then
      fail("no transcript " .. path .. ": a scene of book/transcript? then run make transcripts")
    end
    local output = table.concat(read_lines(path), "\n")
    return pandoc.CodeBlock(output, pandoc.Attr("", { "console" }))
  end
end
