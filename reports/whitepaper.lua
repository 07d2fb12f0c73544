-- Pandoc Lua filter shared by both renderers: Quarto runs it after its own filters (_quarto.yml,
-- `filters: [quarto, reports/whitepaper.lua]`), the built-in renderer passes it to pandoc. It
-- gives the same tables and figures whichever pandoc writes them, and keeps them accessible.
--
-- All formats: table columns get automatic widths. Pandoc derives percentages from the dashes of
--   a wide pipe table's separator line, which squeezes short columns below their longest word.
-- Typst: images carry their alt text (fig-alt, else alt; pandoc's Typst writer drops it, and a
--   PDF/UA-1 document needs it); a captioned table becomes an unnumbered figure with its caption
--   on top (Quarto marks every table `typst:no-figure`, which drops the caption).
-- Colophon: a span of class `renderer` names the renderer and its versions (Quarto or the
--   built-in renderer, pandoc, and for the PDF the Typst that compiles it).
-- HTML: Quarto's embedded cells lose the notebook's path on the build machine (data-notebook);
--   header cells get scope="col"; each table goes into a focusable scroll container named by
--   its caption, so a wide table scrolls on its own (WCAG 2.1: 1.3.1, 1.4.10, 2.1.1); on a phone
--   each row shows as a card of "column: value" lines (body cells carry data-label, and explicit
--   ARIA roles keep the table semantics); the content starts at the anchor #inhoud that the skip link points to (2.4.1).

local function typst_string(text)
  return '"' .. text:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('%s+', ' ') .. '"'
end

local function typst_markup(inlines)
  local doc = pandoc.Pandoc({ pandoc.Plain(inlines) })
  return (pandoc.write(doc, 'typst'):gsub('%s+$', ''))
end

local function automatic_widths(tbl)
  for i, spec in ipairs(tbl.colspecs) do
    tbl.colspecs[i] = { spec[1], pandoc.ColWidthDefault }
  end
  return tbl
end

-- An unnumbered Typst figure (the caption carries its number where there is one) around
-- `blocks`, labelled for cross-references when `label` is not empty.
local function typst_figure(kind, position, caption, blocks, label)
  local out = pandoc.List({ pandoc.RawBlock('typst', '#figure(kind: ' .. kind
    .. ', numbering: none, caption: figure.caption(position: ' .. position .. ', ['
    .. typst_markup(caption) .. ']))[') })
  out:extend(blocks)
  out:insert(pandoc.RawBlock('typst', ']' .. (label ~= '' and (' <' .. label .. '>') or '')))
  return out
end

local function typst_table(tbl)
  tbl = automatic_widths(tbl)
  local caption = tbl.caption.long
  if not tbl.classes:includes('typst:no-figure') then
    tbl.classes:insert('typst:no-figure')
  end
  if #caption == 0 then
    return tbl
  end
  -- A numbered table (the built-in renderer's `{#tbl-...}`: its caption already says "Tabel 3:")
  -- keeps its identifier as the figure's label, which cross-references link to.
  local label = tbl.identifier
  tbl.identifier = ''
  local text = pandoc.utils.blocks_to_inlines(caption)
  tbl.caption = pandoc.Caption()
  return typst_figure('table', 'top', text, { tbl }, label)
end

local function typst_image(img)
  local alt = img.attributes['fig-alt'] or img.attributes['alt']
  if alt == nil or alt == '' then
    alt = pandoc.utils.stringify(img.caption)
  end
  local args = { typst_string(img.src) }
  if alt ~= '' then
    table.insert(args, 'alt: ' .. typst_string(alt))
  end
  for _, key in ipairs({ 'width', 'height' }) do
    local value = img.attributes[key]
    if value and value:match('^[%d.]+%a*%%?$') and not value:match('^[%d.]+$') then
      table.insert(args, key .. ': ' .. value)
    end
  end
  return pandoc.RawInline('typst', '#box(image(' .. table.concat(args, ', ') .. '))')
end

local tables = 0

local function html_table(tbl)
  tbl = automatic_widths(tbl)
  -- Explicit roles keep the table a table for screen readers when a phone's style sheet shows
  -- each row as a card (display: block); every body cell carries its column's name for that.
  tbl.attributes['role'] = 'table'
  local labels = {}
  for _, row in ipairs(tbl.head.rows) do
    row.attributes['role'] = 'row'
    for i, cell in ipairs(row.cells) do
      cell.attributes['scope'] = 'col'
      cell.attributes['role'] = 'columnheader'
      labels[i] = pandoc.utils.stringify(cell.contents)
    end
  end
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.body) do
      row.attributes['role'] = 'row'
      for i, cell in ipairs(row.cells) do
        cell.attributes['role'] = 'cell'
        if labels[i] and labels[i] ~= '' then
          cell.attributes['data-label'] = labels[i]
        end
      end
    end
  end
  tables = tables + 1
  local name = pandoc.utils.stringify(tbl.caption.long)
  if name == '' then
    name = 'Tabel ' .. tables
  end
  return pandoc.Div({ tbl }, pandoc.Attr('', { 'table-scroll' },
    { { 'role', 'group' }, { 'tabindex', '0' }, { 'aria-label', name } }))
end

local function renderer(span)
  if not span.classes:includes('renderer') then
    return nil
  end
  local name = 'de ingebouwde renderer (pandoc ' .. tostring(PANDOC_VERSION) .. ')'
  if quarto ~= nil and quarto.version ~= nil then
    name = 'Quarto ' .. tostring(quarto.version) .. ' (pandoc ' .. tostring(PANDOC_VERSION) .. ')'
  end
  local content = { pandoc.Str(name) }
  if FORMAT:match('typst') then  -- the Typst that compiles the PDF says its own version
    content = { pandoc.Str(name .. ' en Typst '), pandoc.RawInline('typst', '#sys.version') }
  end
  span.content = content
  return span
end

local function embedded_cell(div)
  if div.attributes['notebook'] == nil then
    return nil
  end
  div.attributes['notebook'] = nil
  return div
end

-- The built-in renderer marks a numbered table or figure whose cell shows a sentence instead
-- (thin data) as a Div of class table-note (caption first) or figure-note (caption last); it
-- becomes a captioned figure, as Quarto makes a float of such a cell.
local function note_parts(div)
  local table_note = div.classes:includes('table-note')
  if not table_note and not div.classes:includes('figure-note') then
    return nil
  end
  local blocks = pandoc.List(div.content)
  local caption = table_note and blocks:remove(1) or blocks:remove(#blocks)
  return table_note, blocks, pandoc.utils.blocks_to_inlines({ caption })
end

local function typst_note(div)
  local table_note, blocks, caption = note_parts(div)
  if table_note == nil then
    return nil
  end
  return typst_figure(table_note and 'table' or 'image', table_note and 'top' or 'bottom',
                      caption, blocks, div.identifier)
end

local function html_note(div)
  local table_note, blocks, caption = note_parts(div)
  if table_note == nil then
    return embedded_cell(div)
  end
  return pandoc.Figure(blocks, { pandoc.Plain(caption) }, pandoc.Attr(div.identifier))
end

function Pandoc(doc)
  if FORMAT:match('typst') then
    doc = doc:walk({ Div = typst_note })
    doc = doc:walk({ Table = typst_table, Image = typst_image, Span = renderer })
  elseif FORMAT:match('html') then
    doc = doc:walk({ Table = html_table, Span = renderer, Div = html_note })
    doc.blocks:insert(1, pandoc.RawBlock('html', '<div id="inhoud" tabindex="-1"></div>'))
  else
    doc = doc:walk({ Table = automatic_widths, Span = renderer })
  end
  return doc
end
