// Usage: node read_item.mjs <update file>
// Prints the item a Yjs update stands for as JSON:
// {key, genesis, path, alive, head, body, fields}.

import { readFileSync } from 'node:fs'
import {
  activeGenesis, loadDoc, metaRegister, readFields, resolveMap, winner
} from './schema.mjs'

const doc = loadDoc(readFileSync(process.argv[2]))
const genesis = activeGenesis(doc)
const path = winner(metaRegister(doc, 'path', genesis))

const item = {
  key: doc.getMap('meta').get('key') ?? null,
  genesis,
  path: path === null ? null : path.value,
  alive: metaRegister(doc, 'rev', genesis).some((cell) => cell.value !== null),
  head: genesis === null ? null : doc.getText('head:' + genesis).toString(),
  body: genesis === null ? null : doc.getText('body:' + genesis).toString(),
  fields: resolveMap(readFields(doc, genesis))
}
process.stdout.write(JSON.stringify(item) + '\n')
