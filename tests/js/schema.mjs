// The worksync-p2p item document schema, read with the official yjs package.
//
// An independent reading of the schema described in the module docstrings of
// src/worksync_p2p/core/itemdoc.py and fields.py, shared by read_item.mjs and
// edit_item.mjs. Values stay in their JSON form ({"$date": ...} as-is).

import * as Y from 'yjs'

export const GENESIS_PREFIX = 'g:'
const MAP_NODE = '{"$node":"map"}'
const LIST_NODE = '{"$node":"list"}'
const ABSENT = '{"$node":"absent"}'

export function loadDoc (update) {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc
}

// Python compares strings by code point, JS by UTF-16 unit: compare like Python.
export function cmpStr (a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0))
  const y = Array.from(b, (c) => c.codePointAt(0))
  return cmpInts(x, y)
}

// Lexicographic order of int arrays (a prefix sorts first), like Python lists.
export function cmpInts (x, y) {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1
  }
  return x.length - y.length
}

// Stamps are (ms, counter, writer); the largest wins.
function cmpStamp (a, b) {
  return a.ms - b.ms || a.counter - b.counter || cmpStr(a.writer, b.writer)
}

function maxBy (items, cmp) {
  return items.reduce((best, x) => (best === null || cmp(x, best) > 0 ? x : best), null)
}

// The largest genesis:<G> key of meta, or null before seeding.
export function activeGenesis (doc) {
  const found = [...doc.getMap('meta').keys()]
    .filter((k) => k.startsWith('genesis:'))
    .map((k) => k.slice('genesis:'.length))
    .sort(cmpStr)
  return found.length ? found[found.length - 1] : null
}

// Cells written by a genesis that lost to another are not part of the item.
function dormant (writerOrElement, genesis) {
  if (!writerOrElement.startsWith(GENESIS_PREFIX)) return false
  return writerOrElement.slice(GENESIS_PREFIX.length).split(':')[0] !== genesis
}

// meta register cells `<name>|<writer>` -> [ms, counter, value].
export function metaRegister (doc, name, genesis) {
  const cells = []
  for (const [key, raw] of doc.getMap('meta').entries()) {
    if (!key.startsWith(name + '|')) continue
    const writer = key.slice(name.length + 1)
    if (dormant(writer, genesis)) continue
    const [ms, counter, value] = JSON.parse(raw)
    cells.push({ key, ms, counter, writer, value })
  }
  return cells
}

export function winner (cells) {
  return maxBy(cells, cmpStamp)
}

// The fields map parsed into registers, list elements and children, by path.
// Paths are keyed by their canonical JSON text (what JSON.stringify gives).
export function readFields (doc, genesis) {
  const index = { registers: new Map(), elements: new Map(), children: new Map() }
  for (const [key, raw] of doc.getMap('fields').entries()) {
    const split = key.lastIndexOf(']') + 1 // writers and element ids hold no ']'
    const path = JSON.parse(key.slice(0, split))
    const pathKey = JSON.stringify(path)
    const kind = key[split]
    const rest = key.slice(split + 1)
    if (dormant(rest, genesis)) continue
    const data = JSON.parse(raw)
    if (kind === '|') {
      const [ms, counter, order, value] = data
      if (!index.registers.has(pathKey)) {
        index.registers.set(pathKey, [])
        if (path.length) push(index.children, JSON.stringify(path.slice(0, -1)), path[path.length - 1])
      }
      index.registers.get(pathKey).push({ key, ms, counter, writer: rest, order, value })
    } else if (kind === '#') {
      const [position, value] = data
      push(index.elements, pathKey, { key, id: rest, position, value })
    }
  }
  return index
}

function push (map, key, item) {
  if (!map.has(key)) map.set(key, [])
  map.get(key).push(item)
}

export function liveElements (index, path) {
  const elements = index.elements.get(JSON.stringify(path)) || []
  return [...elements].sort((a, b) => cmpInts(a.position, b.position) || cmpStr(a.id, b.id))
}

export function fieldWinner (index, path) {
  return winner(index.registers.get(JSON.stringify(path)) || [])
}

// The frontmatter the state stands for, as a JSON object.
export function resolveMap (index, path = []) {
  const entries = []
  for (const name of index.children.get(JSON.stringify(path)) || []) {
    const cell = fieldWinner(index, [...path, name])
    if (cell === null || JSON.stringify(cell.value) === ABSENT) continue
    entries.push([cell.order, name, materialize(index, [...path, name], cell.value)])
  }
  entries.sort((a, b) => a[0] - b[0] || cmpStr(a[1], b[1]))
  return Object.fromEntries(entries.map(([, name, value]) => [name, value]))
}

function materialize (index, path, value) {
  const marker = JSON.stringify(value)
  if (marker === MAP_NODE) return resolveMap(index, path)
  if (marker === LIST_NODE) return liveElements(index, path).map((e) => e.value)
  return value
}

// A list position strictly between lo and hi (null: open end); port of positions.py.
export function between (lo, hi) {
  const BASE = 1 << 16
  const out = []
  let loActive = lo !== null
  let hiActive = hi !== null
  for (let i = 0; i < 1000; i++) {
    const a = loActive && i < lo.length ? lo[i] : 0
    const b = hiActive && i < hi.length ? hi[i] : BASE
    if (b - a > 1) {
      out.push(Math.floor((a + b) / 2))
      return out
    }
    out.push(a)
    if (a < b) hiActive = false
    if (lo === null || i >= lo.length || out[i] > lo[i]) loActive = false
  }
  throw new Error(`no position between ${lo} and ${hi}`)
}
