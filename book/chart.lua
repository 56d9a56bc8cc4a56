--[[
chart.lua: the benchmark's bar chart, drawn from its results when the
book is built (include.lua calls it; no program beyond pandoc).

A chapter writes an empty code block that names the results file:

  ```{chart="book/bench/results.tsv"}```

and gets an SVG picture in its place, inline (HTML, EPUB and the PDF
all show it): a panel per mode, with its own axis, and in it, for
each number of connections, a bar per server, the median of the rounds, with a thin line from the slowest
round to the fastest; nginx is not a bar but a dashed line across
the group, the mark to reach. The file is what tests/bench/run
writes (make bench): comment lines starting with #, a header line,
then one line per measurement, tab-separated: round, server,
connections, mode (keep-alive or close), requests per second, errors,
the server's processor time per request.
caption="..." replaces the caption made from the file.
]]

local chart = {}
-- bench.lua's median and order of servers: include.lua passes bench in.
local median, server_order

local WIDTH, PANEL_HEIGHT = 720, 260 -- a panel per mode, one above the other
local LEFT, RIGHT, TOP, BOTTOM = 64, 12, 40, 48
local REFERENCE = "nginx"
local COLOURS = { step = "#4a78b0", floor = "#8c8c8c", other = "#6a9f58" }
local REFERENCE_COLOUR = "#c0392b"

local function escape(text)
  return (tostring(text):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
end

-- Reads the results: a list of measurements, and the header's comments.
local function read_results(path, fail)
  local file = io.open(path, "r")
  if not file then
    fail("no such file: " .. path .. " (make bench writes it)")
  end
  local rows, comments, number = {}, {}, 0
  for line in file:lines() do
    number = number + 1
    if line:match("^#") then
      comments[#comments + 1] = line:gsub("^#%s*", "")
    elseif not line:match("^round\t") and line ~= "" then
      local round, server, connections, mode, rps, errors =
        line:match("^(%d+)\t([^\t]+)\t(%d+)\t([^\t]+)\t([%d.]+)\t(%d+)\t[%d.]+$")
      if not round then
        fail(path .. ":" .. number .. ": not round, server, connections, mode, "
          .. "requests per second, errors and processor time per request, tab-separated: " .. line)
      end
      rows[#rows + 1] = {
        round = tonumber(round), server = server, connections = tonumber(connections),
        mode = mode, rps = tonumber(rps), errors = tonumber(errors),
      }
    end
  end
  file:close()
  if #rows == 0 then
    fail(path .. ": no measurements")
  end
  return rows, comments
end

-- Groups the measurements: one group per mode and number of connections
-- (keep-alive first, fewer connections first), each with the median,
-- minimum and maximum of every server's rounds.
local function summarise(rows)
  local groups, by_key, servers, seen, rounds = {}, {}, {}, {}, 0
  for _, row in ipairs(rows) do
    local key = row.mode .. " " .. row.connections
    if not by_key[key] then
      by_key[key] = { mode = row.mode, connections = row.connections, values = {}, stats = {} }
      groups[#groups + 1] = by_key[key]
    end
    local values = by_key[key].values
    values[row.server] = values[row.server] or {}
    table.insert(values[row.server], row.rps)
    if not seen[row.server] and row.server ~= REFERENCE then
      seen[row.server] = true
      servers[#servers + 1] = row.server
    end
    rounds = math.max(rounds, row.round)
  end
  table.sort(servers, server_order)
  table.sort(groups, function(a, b)
    if a.mode ~= b.mode then
      return a.mode == "keep-alive"
    end
    return a.connections < b.connections
  end)
  for _, group in ipairs(groups) do
    for server, values in pairs(group.values) do
      local middle, low, high = median(values)
      group.stats[server] = { median = middle, low = low, high = high }
    end
  end
  return groups, servers, rounds
end

-- A round number of requests per second above the highest, and a step
-- for the axis's lines: 1, 2 or 5 times a power of ten.
local function axis(highest)
  local raw = math.max(highest, 1) / 5
  local power = 10 ^ math.floor(math.log(raw, 10))
  local step = power
  for _, factor in ipairs({ 1, 2, 5, 10 }) do
    if power * factor >= raw then
      step = power * factor
      break
    end
  end
  return step * math.ceil(highest / step), step
end

local function thousands(value)
  if value >= 10000 then
    return string.format("%.0fk", value / 1000)
  elseif value >= 1000 then
    return string.format("%.1fk", value / 1000)
  end
  return string.format("%.0f", value)
end

local function short_name(server)
  return (server:gsub("^step", ""))
end

local function colour(server)
  if server:match("^step") then
    return COLOURS.step
  end
  return COLOURS[server] or COLOURS.other
end

-- The groups of one mode, in their order.
local function panels_of(groups)
  local panels, by_mode = {}, {}
  for _, group in ipairs(groups) do
    if not by_mode[group.mode] then
      by_mode[group.mode] = { mode = group.mode, groups = {} }
      panels[#panels + 1] = by_mode[group.mode]
    end
    table.insert(by_mode[group.mode].groups, group)
  end
  return panels
end

local function connections_text(connections)
  return connections == 1 and "1 connection" or string.format("%d connections", connections)
end

-- The picture, as SVG markup: a panel per mode, one above the other, each
-- with its own axis (a close request costs several times a keep-alive
-- one, and its bars would be slivers on the keep-alive scale).
local function draw(groups, servers, rounds)
  local out = {}
  local function add(format, ...)
    out[#out + 1] = string.format(format, ...)
  end
  local panels = panels_of(groups)
  local height = TOP + #panels * PANEL_HEIGHT
  local plot_width = WIDTH - LEFT - RIGHT

  add('<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="100%%" '
    .. 'font-family="DejaVu Sans, sans-serif" font-size="12" role="img">', WIDTH, height)
  add("<title>Requests per second of each server, median of %d rounds</title>", rounds)
  -- The legend.
  add('<line x1="%d" x2="%d" y1="16" y2="16" stroke="%s" stroke-width="2" stroke-dasharray="6 3"/>',
    LEFT, LEFT + 28, REFERENCE_COLOUR)
  add('<text x="%d" y="16" dominant-baseline="middle">%s, one worker</text>', LEFT + 34, REFERENCE)
  add('<line x1="%d" x2="%d" y1="10" y2="22" stroke="#333333"/>', LEFT + 190, LEFT + 190)
  add('<text x="%d" y="16" dominant-baseline="middle">slowest to fastest round of %d; the bar: the median</text>',
    LEFT + 198, rounds)

  for p, panel in ipairs(panels) do
    local panel_top = TOP + (p - 1) * PANEL_HEIGHT
    local plot_top, plot_bottom = panel_top + 24, panel_top + PANEL_HEIGHT - BOTTOM
    local highest = 0
    for _, group in ipairs(panel.groups) do
      for _, stats in pairs(group.stats) do
        highest = math.max(highest, stats.high)
      end
    end
    local top_value, step = axis(highest)
    local function y(value)
      return plot_top + (plot_bottom - plot_top) * (1 - value / top_value)
    end
    add('<text x="%d" y="%d" font-weight="bold">%s</text>', LEFT, panel_top + 8,
      escape(panel.mode == "close" and "Connection: close" or panel.mode))
    -- The axis: a line and a label every step.
    for value = 0, top_value + step / 2, step do
      add('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#dddddd"/>', LEFT, WIDTH - RIGHT, y(value), y(value))
      add('<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>',
        LEFT - 6, y(value), thousands(value))
    end
    add('<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">requests per second</text>',
      (plot_top + plot_bottom) / 2, (plot_top + plot_bottom) / 2)

    local group_width = plot_width / #panel.groups
    local bar_width = group_width / (#servers + 1.5)
    for g, group in ipairs(panel.groups) do
      local left = LEFT + (g - 1) * group_width
      for s, server in ipairs(servers) do
        local stats = group.stats[server]
        local x = left + bar_width * (s - 0.25)
        local middle = x + bar_width * 0.4
        if stats then
          add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s, %s: '
            .. '%.0f requests per second (%.0f to %.0f)</title></rect>',
            x, y(stats.median), bar_width * 0.8, y(0) - y(stats.median), colour(server),
            escape(server), escape(group.mode), connections_text(group.connections), stats.median,
            stats.low, stats.high)
          add('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333333"/>',
            middle, middle, y(stats.low), y(stats.high))
          add('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>',
            middle, math.min(y(stats.high), y(stats.median)) - 4, thousands(stats.median))
        end
        add('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>', middle, y(0) + 14,
          escape(short_name(server)))
      end
      local reference = group.stats[REFERENCE]
      if reference then
        add('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="6 3">'
          .. '<title>%s: %.0f requests per second (%.0f to %.0f)</title></line>',
          left + 4, left + group_width - 4, y(reference.median), y(reference.median), REFERENCE_COLOUR,
          REFERENCE, reference.median, reference.low, reference.high)
      end
      add('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>',
        left + group_width / 2, y(0) + 32, connections_text(group.connections))
      if g > 1 then
        add('<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#999999"/>', left, left, plot_top, y(0) + 36)
      end
    end
    add('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333333"/>', LEFT, WIDTH - RIGHT, y(0), y(0))
  end
  add("</svg>")
  return table.concat(out, "\n")
end

-- The block that replaces ```{chart="PATH"}```: a figure, raw HTML.
function chart.block(block, fail)
  local path = block.attributes.chart
  local rows, comments = read_results(path, fail)
  local groups, servers, rounds = summarise(rows)
  local date, machine = "", ""
  for _, comment in ipairs(comments) do
    date = comment:match("^date: (.*)") or date
    machine = comment:match("^machine: (.*)") or machine
  end
  local caption = block.attributes.caption
    or string.format("Requests per second with wrk -t1, the median of %d round%s "
      .. "(the bars stepNN: the book's steps), measured %s on %s by make bench.",
      rounds, rounds == 1 and "" or "s", date, machine)
  return pandoc.RawBlock("html", '<figure class="chart">\n' .. draw(groups, servers, rounds)
    .. "\n<figcaption>" .. escape(caption) .. "</figcaption>\n</figure>")
end

-- chart.lua returns a function of bench.lua's table, which gives it the
-- helpers both need.
return function(bench)
  median, server_order = bench.median, bench.server_order
  return chart
end
