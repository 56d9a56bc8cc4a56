--[[
bench.lua: the benchmark's figures, computed from the committed results
(book/bench/*.tsv, written by make bench) when the book is built, so
that no number in the benchmark chapter is typed by hand and every
sentence stays true for whatever run is committed. include.lua calls it.

A value in a sentence is an empty span:

  []{.bench value="ratio step09 nginx keep-alive 16"}       1.22×

  median SERVER MODE CONNECTIONS      the median of the rounds, requests
                                      per second (61,796)
  slowest / fastest SERVER MODE CONNECTIONS   one round, the extremes
  ratio A B MODE CONNECTIONS          median of A / median of B (1.22×)
  percent A B MODE CONNECTIONS        the same as a percentage (92%)
  wins A B MODE CONNECTIONS           in how many rounds A answered more
                                      requests than B (4 of 5)
  cpu SERVER MODE CONNECTIONS         median processor time per request,
                                      microseconds (7.84)
  cpu-ratio A B MODE CONNECTIONS      cpu of A / cpu of B (1.13×)
  cpu-difference A B MODE CONNECTIONS cpu of A - cpu of B (0.93)
  rounds, seconds, date, machine,     of results.tsv's run (with class
  command                             .code, as code: `tests/bench/run 2 5`)
  syscalls SERVER [CALL]              per keep-alive request, from
                                      syscalls.tsv: all calls, or one (2.14)
  syscalls-ratio A B                  all calls per request of A / of B
  calls SERVER CALL                   how many, over the whole count
  errors SERVER CALL                  how many of those failed (EAGAIN, ...)
  requests                            how many requests syscalls.tsv counts
  bytes SERVER                        memory per idle connection, from
                                      connections.tsv (95)
  connections SERVER                  how many it held (10,000)

file="PATH" reads another file than book/bench/results.tsv,
syscalls.tsv or connections.tsv. With words="YES|NO" and at-least="X"
(or at-most="X"), the span is a word instead of the value: YES when the
value, as it would be printed, is at least (at most) X, else NO:

  []{.bench value="ratio step09 nginx keep-alive 16" at-least="1"
    words="at least as many as|fewer than"}

A table is an empty code block:

  ```{bench="medians"}```      requests per second, a row per mode and
                               number of connections, a column per server
  ```{bench="cpu"}```          the same, processor time per request
  ```{bench="rounds"}```       every round of requests per second
  ```{bench="syscalls"}```     system calls per keep-alive request
  ```{bench="connections"}```  memory per idle connection

A server, mode or call that is not in the file stops the build, naming
it and what the file has.
]]

local bench = {}

local FILES = {
  results = "book/bench/results.tsv",
  syscalls = "book/bench/syscalls.tsv",
  connections = "book/bench/connections.tsv",
}
local COLUMNS = {
  results = { "round", "server", "connections", "mode", "requests_per_second", "errors", "cpu_us_per_request" },
  syscalls = { "server", "syscall", "calls", "errors", "per_request" },
  connections = { "server", "connections", "reconnections", "open_when_measured",
    "rss_before_kib", "rss_after_kib", "bytes_per_connection" },
}

-- Reads a results file: its comments, and its rows as tables keyed by
-- the header's names, which must be those of COLUMNS[kind].
local cache = {}
local function read_file(kind, path, fail)
  path = path or FILES[kind]
  if cache[path] then
    return cache[path]
  end
  local file = io.open(path, "r")
  if not file then
    fail("no such file: " .. path .. " (make bench writes it)")
  end
  local data = { path = path, comments = {}, rows = {} }
  local header, number = nil, 0
  for line in file:lines() do
    number = number + 1
    if line:match("^#") then
      data.comments[#data.comments + 1] = line:gsub("^#%s*", "")
    elseif line ~= "" and not header then
      header = table.concat(COLUMNS[kind], "\t")
      if line ~= header then
        fail(path .. ":" .. number .. ": the header should be " .. header:gsub("\t", ", ") .. ": " .. line)
      end
    elseif line ~= "" then
      local row, i = {}, 0
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do
        i = i + 1
        local name = COLUMNS[kind][i]
        if not name then
          break
        end
        row[name] = (name == "server" or name == "mode" or name == "syscall") and field or tonumber(field)
        if row[name] == nil then
          fail(path .. ":" .. number .. ": " .. name .. " is not a number: " .. line)
        end
      end
      if i ~= #COLUMNS[kind] then
        fail(path .. ":" .. number .. ": not " .. #COLUMNS[kind] .. " tab-separated fields: " .. line)
      end
      data.rows[#data.rows + 1] = row
    end
  end
  file:close()
  if #data.rows == 0 then
    fail(path .. ": no measurements")
  end
  cache[path] = data
  return data
end

-- The median of a list of numbers, then its smallest and largest.
local function median(values)
  local sorted = {}
  for i, v in ipairs(values) do
    sorted[i] = v
  end
  table.sort(sorted)
  local n = #sorted
  local middle = (n % 2 == 1) and sorted[(n + 1) // 2] or (sorted[n // 2] + sorted[n // 2 + 1]) / 2
  return middle, sorted[1], sorted[n]
end

-- The steps in order, then the floor, then anything else but nginx,
-- then nginx: the order of the chart.
local function rank(name)
  if name:match("^step") then
    return 1
  elseif name == "floor" then
    return 2
  elseif name == "nginx" then
    return 4
  end
  return 3
end
local function server_order(a, b)
  if rank(a) ~= rank(b) then
    return rank(a) < rank(b)
  end
  return a < b
end

-- Every server of a file, in the chart's order.
local function servers_of(data)
  local seen, list = {}, {}
  for _, row in ipairs(data.rows) do
    if not seen[row.server] then
      seen[row.server] = true
      list[#list + 1] = row.server
    end
  end
  table.sort(list, server_order)
  return list
end

local function check_server(data, server, fail)
  for _, name in ipairs(servers_of(data)) do
    if name == server then
      return
    end
  end
  fail("no server '" .. tostring(server) .. "' in " .. data.path .. ", which has "
    .. table.concat(servers_of(data), ", "))
end

-- The groups of results.tsv, keep-alive first, fewer connections first.
local function groups_of(data)
  local seen, list = {}, {}
  for _, row in ipairs(data.rows) do
    local key = row.mode .. " " .. row.connections
    if not seen[key] then
      seen[key] = true
      list[#list + 1] = { mode = row.mode, connections = row.connections }
    end
  end
  table.sort(list, function(a, b)
    if a.mode ~= b.mode then
      return a.mode == "keep-alive"
    end
    return a.connections < b.connections
  end)
  return list
end

-- The rounds of one server in one group: a column's values, in order of
-- the rounds.
local function cell_values(data, server, mode, connections, column, fail)
  check_server(data, server, fail)
  local values = {}
  for _, row in ipairs(data.rows) do
    if row.server == server and row.mode == mode and row.connections == tonumber(connections) then
      values[#values + 1] = row[column]
    end
  end
  if #values == 0 then
    local groups = {}
    for _, group in ipairs(groups_of(data)) do
      groups[#groups + 1] = group.mode .. " " .. group.connections
    end
    fail("no measurement of " .. server .. " with " .. tostring(mode) .. " " .. tostring(connections)
      .. " in " .. data.path .. ", which has " .. table.concat(groups, ", "))
  end
  return values
end

-- 61796 -> "61,796".
local function thousands(value)
  local text = string.format("%.0f", value)
  local sign, digits = text:match("^(-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end

-- A count of calls per request: two decimals, three below 0.1.
local function per_request(value)
  if value ~= 0 and math.abs(value) < 0.1 then
    return string.format("%.3f", value)
  end
  return string.format("%.2f", value)
end

local function comment(data, name, fail)
  for _, text in ipairs(data.comments) do
    local value = text:match("^" .. name .. ": (.*)")
    if value then
      return value
    end
  end
  fail(data.path .. " has no comment line '# " .. name .. ": ...'")
end

local function syscall_row(data, server, call, fail)
  check_server(data, server, fail)
  local known = false
  for _, row in ipairs(data.rows) do
    if row.syscall == call then
      known = true
      if row.server == server then
        return row
      end
    end
  end
  if not known then
    fail("no system call '" .. tostring(call) .. "' in " .. data.path)
  end
  return { calls = 0, per_request = 0, errors = 0 }
end

local function connections_row(data, server, fail)
  check_server(data, server, fail)
  for _, row in ipairs(data.rows) do
    if row.server == server then
      return row
    end
  end
end

-- The operations of value="...": each takes the words after its name and
-- returns the text to print.
local function rps(file, fail, server, mode, connections)
  return (median(cell_values(read_file("results", file, fail), server, mode, connections,
    "requests_per_second", fail)))
end
local function cpu(file, fail, server, mode, connections)
  return (median(cell_values(read_file("results", file, fail), server, mode, connections,
    "cpu_us_per_request", fail)))
end
local function extreme(pick)
  return function(file, fail, server, mode, connections)
    local values = cell_values(read_file("results", file, fail), server, mode, connections,
      "requests_per_second", fail)
    table.sort(values)
    return thousands(pick == "low" and values[1] or values[#values])
  end
end
local OPERATIONS = {
  median = { 3, function(file, fail, s, m, c)
    return thousands(rps(file, fail, s, m, c))
  end },
  slowest = { 3, extreme("low") },
  fastest = { 3, extreme("high") },
  ratio = { 4, function(file, fail, a, b, m, c)
    return string.format("%.2f×", rps(file, fail, a, m, c) / rps(file, fail, b, m, c))
  end },
  percent = { 4, function(file, fail, a, b, m, c)
    return string.format("%.0f%%", 100 * rps(file, fail, a, m, c) / rps(file, fail, b, m, c))
  end },
  -- Round by round: cell_values gives each server's rounds in order.
  wins = { 4, function(file, fail, a, b, m, c)
    local data = read_file("results", file, fail)
    local ours = cell_values(data, a, m, c, "requests_per_second", fail)
    local theirs = cell_values(data, b, m, c, "requests_per_second", fail)
    local rounds, count = math.min(#ours, #theirs), 0
    for i = 1, rounds do
      if ours[i] > theirs[i] then
        count = count + 1
      end
    end
    return string.format("%d of %d", count, rounds)
  end },
  cpu = { 3, function(file, fail, s, m, c)
    return string.format("%.2f", cpu(file, fail, s, m, c))
  end },
  ["cpu-ratio"] = { 4, function(file, fail, a, b, m, c)
    return string.format("%.2f×", cpu(file, fail, a, m, c) / cpu(file, fail, b, m, c))
  end },
  ["cpu-difference"] = { 4, function(file, fail, a, b, m, c)
    return string.format("%.2f", cpu(file, fail, a, m, c) - cpu(file, fail, b, m, c))
  end },
  rounds = { 0, function(file, fail)
    local rounds = 0
    for _, row in ipairs(read_file("results", file, fail).rows) do
      rounds = math.max(rounds, row.round)
    end
    return tostring(rounds)
  end },
  seconds = { 0, function(file, fail)
    local data = read_file("results", file, fail)
    for _, text in ipairs(data.comments) do
      local seconds = text:match("^wrk .*%-d(%d+)s")
      if seconds then
        return seconds
      end
    end
    fail(data.path .. " has no comment line '# wrk ... -dNs ...'")
  end },
  date = { 0, function(file, fail)
    return comment(read_file("results", file, fail), "date", fail)
  end },
  command = { 0, function(file, fail)
    return comment(read_file("results", file, fail), "command", fail)
  end },
  machine = { 0, function(file, fail)
    return comment(read_file("results", file, fail), "machine", fail)
  end },
  syscalls = { 1, function(file, fail, server, call)
    return per_request(syscall_row(read_file("syscalls", file, fail), server, call or "total", fail).per_request)
  end, 2 },
  ["syscalls-ratio"] = { 2, function(file, fail, a, b)
    local data = read_file("syscalls", file, fail)
    return string.format("%.2f×", syscall_row(data, a, "total", fail).per_request
      / syscall_row(data, b, "total", fail).per_request)
  end },
  errors = { 2, function(file, fail, server, call)
    return thousands(syscall_row(read_file("syscalls", file, fail), server, call, fail).errors)
  end },
  calls = { 2, function(file, fail, server, call)
    return thousands(syscall_row(read_file("syscalls", file, fail), server, call, fail).calls)
  end },
  requests = { 0, function(file, fail)
    local data = read_file("syscalls", file, fail)
    for _, text in ipairs(data.comments) do
      local requests = text:match("makes (%d+) keep%-alive requests")
      if requests then
        return thousands(tonumber(requests))
      end
    end
    fail(data.path .. " has no comment line saying '... makes N keep-alive requests'")
  end },
  bytes = { 1, function(file, fail, server)
    return thousands(connections_row(read_file("connections", file, fail), server, fail).bytes_per_connection)
  end },
  connections = { 1, function(file, fail, server)
    return thousands(connections_row(read_file("connections", file, fail), server, fail).connections)
  end },
}

-- The text of value="...": "1.22×".
function bench.compute(expression, file, fail)
  local words = {}
  for word in expression:gmatch("%S+") do
    words[#words + 1] = word
  end
  local name = table.remove(words, 1) or ""
  local operation = OPERATIONS[name]
  if not operation then
    local names = {}
    for known in pairs(OPERATIONS) do
      names[#names + 1] = known
    end
    table.sort(names)
    fail('value="' .. expression .. '": no such value \'' .. name .. "'; the values: " .. table.concat(names, ", "))
  end
  local least, most = operation[1], operation[3] or operation[1]
  if #words < least or #words > most then
    fail('value="' .. expression .. '": ' .. name .. " takes " .. least
      .. (most ~= least and " or " .. most or "") .. " words after its name, not " .. #words)
  end
  return operation[2](file, fail, table.unpack(words))
end

-- The span []{.bench value="..."}: the value, or with words="YES|NO" one
-- of the words.
function bench.inline(span, fail)
  local attributes = span.attributes
  local expression = attributes.value
  if not expression then
    fail('a span of class bench needs value="...": ' .. pandoc.utils.stringify(span))
  end
  local text = bench.compute(expression, attributes.file, fail)
  if attributes.words then
    local yes, no = attributes.words:match("^(.-)|(.*)$")
    local number = tonumber((text:gsub("[,×%%]", "")))
    local bound = tonumber(attributes["at-least"] or attributes["at-most"] or "")
    if not yes or not number or not bound then
      fail('value="' .. expression .. '" words="' .. attributes.words
        .. '": words="YES|NO" needs at-least="X" or at-most="X", and a numeric value')
    end
    local holds = attributes["at-least"] and number >= bound or (not attributes["at-least"] and number <= bound)
    text = holds and yes or no
  end
  if span.classes:includes("code") then
    return pandoc.Code(text)
  end
  return pandoc.Str(text)
end

-- A table as pipe-table markdown, read back by pandoc.
--   make_table CAPTION HEADER ROWS   (HEADER and each row: lists of text)
local function make_table(caption, header, rows)
  local lines = { "| " .. table.concat(header, " | ") .. " |" }
  local rule = { ":--" }
  for _ = 2, #header do
    rule[#rule + 1] = "--:"
  end
  lines[#lines + 1] = "|" .. table.concat(rule, "|") .. "|"
  for _, row in ipairs(rows) do
    lines[#lines + 1] = "| " .. table.concat(row, " | ") .. " |"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ": " .. caption
  -- In a div of its own, so that the print style sheet keeps it whole.
  return pandoc.Div(pandoc.read(table.concat(lines, "\n"), "markdown").blocks, pandoc.Attr("", { "bench-table" }))
end

local function short_name(server)
  return (server:gsub("^step", ""))
end

-- Requests per second or processor time, a row per group.
local function medians_table(file, fail, column)
  local data = read_file("results", file, fail)
  local servers = servers_of(data)
  local header = { "" }
  for _, server in ipairs(servers) do
    header[#header + 1] = short_name(server)
  end
  local rows = {}
  for _, group in ipairs(groups_of(data)) do
    local row = { group.mode .. ", " .. group.connections }
    for _, server in ipairs(servers) do
      local ok = false
      for _, r in ipairs(data.rows) do
        ok = ok or (r.server == server and r.mode == group.mode and r.connections == group.connections)
      end
      if not ok then
        row[#row + 1] = "–"
      else
        local value = median(cell_values(data, server, group.mode, group.connections, column, fail))
        row[#row + 1] = column == "cpu_us_per_request" and string.format("%.2f", value) or thousands(value)
      end
    end
    rows[#rows + 1] = row
  end
  local rounds = OPERATIONS.rounds[2](file, fail)
  local what = column == "cpu_us_per_request"
    and "The server's processor time per request, in microseconds"
    or "Requests per second"
  return make_table(string.format("%s, the median of %s round%s (%s, measured %s).", what, rounds,
    rounds == "1" and "" or "s", data.path, comment(data, "date", fail)), header, rows)
end

-- Every round of requests per second: a row per group and round.
local function rounds_table(file, fail)
  local data = read_file("results", file, fail)
  local servers = servers_of(data)
  local header = { "", "round" }
  for _, server in ipairs(servers) do
    header[#header + 1] = short_name(server)
  end
  local rounds = tonumber(OPERATIONS.rounds[2](file, fail))
  local rows = {}
  for _, group in ipairs(groups_of(data)) do
    for round = 1, rounds do
      local row = { round == 1 and (group.mode .. ", " .. group.connections) or "", tostring(round) }
      for _, server in ipairs(servers) do
        local text = "–"
        for _, r in ipairs(data.rows) do
          if r.server == server and r.mode == group.mode and r.connections == group.connections
            and r.round == round then
            text = thousands(r.requests_per_second) .. (r.errors > 0 and "*" or "")
          end
        end
        row[#row + 1] = text
      end
      rows[#rows + 1] = row
    end
  end
  return make_table(string.format("Requests per second in each round (%s; *: with errors).",
    data.path), header, rows)
end

-- System calls per request: a row per call, most frequent first, a
-- column per server, the total last.
local function syscalls_table(file, fail)
  local data = read_file("syscalls", file, fail)
  local servers = servers_of(data)
  local header = { "" }
  for _, server in ipairs(servers) do
    header[#header + 1] = short_name(server)
  end
  local calls, most, value = {}, {}, {}
  for _, row in ipairs(data.rows) do
    if row.syscall ~= "total" then
      if not most[row.syscall] then
        calls[#calls + 1] = row.syscall
        most[row.syscall] = 0
      end
      most[row.syscall] = math.max(most[row.syscall], row.per_request)
    end
    value[row.server .. " " .. row.syscall] = row.per_request
  end
  table.sort(calls, function(a, b)
    if most[a] ~= most[b] then
      return most[a] > most[b]
    end
    return a < b
  end)
  local rows = {}
  for _, call in ipairs(calls) do
    -- A call that no server makes once in a hundred requests is start-up
    -- or an accident of timing: counted in the total, not shown.
    if most[call] >= 0.005 then
      local row = { "`" .. call .. "`" }
      for _, server in ipairs(servers) do
        local v = value[server .. " " .. call]
        row[#row + 1] = (v and v >= 0.0005) and per_request(v) or ""
      end
      rows[#rows + 1] = row
    end
  end
  local row = { "**all**" }
  for _, server in ipairs(servers) do
    row[#row + 1] = "**" .. per_request(value[server .. " total"] or 0) .. "**"
  end
  rows[#rows + 1] = row
  return make_table(string.format("System calls per keep-alive request, %s requests on 16 connections "
    .. "under strace -c (%s, measured %s). Blank: fewer than one call in 2,000 requests. A call that "
    .. "no server makes once in 200 requests (starting up) has no row, but is counted in all.",
    OPERATIONS.requests[2](file, fail), data.path, comment(data, "date", fail)), header, rows)
end

-- Memory per idle connection: a row per server measured.
local function connections_table(file, fail)
  local data = read_file("connections", file, fail)
  local rows = {}
  for _, server in ipairs(servers_of(data)) do
    local r = connections_row(data, server, fail)
    rows[#rows + 1] = { server, thousands(r.connections), thousands(r.open_when_measured),
      thousands(r.rss_before_kib), thousands(r.rss_after_kib), thousands(r.bytes_per_connection) }
  end
  return make_table(string.format("Resident memory (VmRSS) before and with every connection open and idle "
    .. "(%s, measured %s).", data.path, comment(data, "date", fail)),
    { "server", "connections", "open when measured", "KiB before", "KiB with them", "bytes each" }, rows)
end

local TABLES = {
  medians = function(file, fail)
    return medians_table(file, fail, "requests_per_second")
  end,
  cpu = function(file, fail)
    return medians_table(file, fail, "cpu_us_per_request")
  end,
  rounds = rounds_table,
  syscalls = syscalls_table,
  connections = connections_table,
}

-- The block ```{bench="NAME"}```: a table.
function bench.block(block, fail)
  local name = block.attributes.bench
  local make = TABLES[name]
  if not make then
    fail('bench="' .. name .. '": no such table; the tables: connections, cpu, medians, rounds, syscalls')
  end
  return make(block.attributes.file, fail)
end

-- For chart.lua, which orders and summarises the same results.
bench.median = median
bench.server_order = server_order

return bench
