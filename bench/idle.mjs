// Opens N raw WebSocket connections to the worker listener and holds them idle.
// Usage: node bench/idle.mjs <engine ws url> <N>
// Prints {"event":"ready","open":N} once every connection got its first frame
// (workerregistered), then waits until stdin closes.

import WebSocket from '../tests/node/node_modules/ws/wrapper.mjs'

const [url, nArg] = process.argv.slice(2)
const n = Number(nArg ?? 1000)
const sockets = []
let ready = 0

await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`only ${ready}/${n} connections ready in 60 s`)), 60000)
  let opened = 0
  const openNext = () => {
    // Open in batches of 50 so the accept queue never overflows.
    for (let k = 0; k < 50 && opened < n; k++, opened++) {
      const ws = new WebSocket(url)
      ws.once('message', () => {
        ready++
        if (ready === n) {
          clearTimeout(timer)
          resolve()
        } else if (ready === opened) openNext()
      })
      ws.on('error', (err) => reject(err))
      sockets.push(ws)
    }
  }
  openNext()
})
process.stdout.write(`${JSON.stringify({ event: 'ready', open: sockets.length })}\n`)
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
