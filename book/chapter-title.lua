-- chapter-title.lua: for the HTML pages, the chapter's first heading
-- becomes the page's title, so that the template can put the chapter's
-- table of contents under it rather than above it.
function Pandoc(doc)
  for i, block in ipairs(doc.blocks) do
    if block.t == "Header" and block.level == 1 then
      doc.meta.title = block.content
      doc.blocks:remove(i)
      return doc
    end
  end
  return doc
end
