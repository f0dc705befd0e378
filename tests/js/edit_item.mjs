// Usage: node edit_item.mjs <update in> <update out> <edit JSON>...
// Applies edits as a Yjs client with a random clientID would, and writes the
// full resulting state (Y.encodeStateAsUpdate) to <update out>. Edits:
//   {"op": "insert", "index": <UTF-16 index into the body>, "text": "..."}
//   {"op": "set", "path": [...], "value": <JSON value or node marker>,
//    "writer": "...", "ms": <int>, "counter": <int>}  (order: kept, or appended)
//   {"op": "append", "path": [...], "value": <JSON value>}

import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import * as Y from 'yjs'
import {
  activeGenesis, between, fieldWinner, liveElements, loadDoc, readFields
} from './schema.mjs'

const [input, output, ...edits] = process.argv.slice(2)
const doc = loadDoc(readFileSync(input))
const genesis = activeGenesis(doc)
if (genesis === null) throw new Error('document has no genesis')
const fields = doc.getMap('fields')

function insert ({ index, text }) {
  doc.getText('body:' + genesis).insert(index, text)
}

// Register protocol: delete the cells of the path this writer sees, then
// write its own cell.
function set ({ path, value, writer, ms, counter }) {
  const index = readFields(doc, genesis)
  const seen = index.registers.get(JSON.stringify(path)) || []
  const siblings = index.children.get(JSON.stringify(path.slice(0, -1))) || []
  const order = seen.length
    ? fieldWinner(index, path).order
    : Math.max(-1, ...siblings.map((name) => fieldWinner(index, [...path.slice(0, -1), name]).order)) + 1
  for (const cell of seen) fields.delete(cell.key)
  fields.set(`${JSON.stringify(path)}|${writer}`, JSON.stringify([ms, counter, order, value]))
}

function append ({ path, value }) {
  const index = readFields(doc, genesis)
  const cell = fieldWinner(index, path)
  if (cell === null || JSON.stringify(cell.value) !== '{"$node":"list"}') {
    throw new Error(`${JSON.stringify(path)} is not a list`)
  }
  const elements = liveElements(index, path)
  const last = elements.length ? elements[elements.length - 1].position : null
  // Any id not starting with "g:" will do; Python hashes the value with BLAKE2b-64.
  fields.set(`${JSON.stringify(path)}#js-${randomUUID()}`, JSON.stringify([between(last, null), value]))
}

const ops = { insert, set, append }
for (const text of edits) {
  const edit = JSON.parse(text)
  doc.transact(() => ops[edit.op](edit))
}
writeFileSync(output, Y.encodeStateAsUpdate(doc))
