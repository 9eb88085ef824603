// Round-trip benchmark with the official Node iii-sdk 0.22.1 clients (from tests/node).
// Usage: node bench/roundtrip.mjs <engine ws url> [seq calls] [parallel calls] [timeout ms]
// Prints one JSON object: results at 1 and 64 calls in flight.

import { registerWorker } from '../tests/node/node_modules/iii-sdk/dist/index.mjs'
import { runBulk } from '../tests/node/lib/bulk.mjs'

for (const level of ['log', 'info', 'debug', 'warn']) console[level] = (...a) => console.error(...a)

// `--owner <url>`: only own `bench::echo`, in its own process (as workers are deployed), until
// stdin closes. Otherwise: call it (from this process) and report.
if (process.argv[2] === '--owner') {
  const owner = registerWorker(process.argv[3], { workerName: 'bench-owner', otel: { enabled: false } })
  owner.registerFunction('bench::echo', async (input) => input)
  process.stdin.resume()
  process.stdin.on('end', async () => {
    await owner.shutdown()
    process.exit(0)
  })
} else {
  await main()
}

async function main() {
  const [url, seqArg, parArg, timeoutArg] = process.argv.slice(2)
  const seqCalls = Number(seqArg ?? 5000)
  const parCalls = Number(parArg ?? 50000)
  const timeoutMs = Number(timeoutArg ?? 2000)

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  async function connected(worker) {
    const deadline = Date.now() + 20000
    while (!worker.workerId) {
      if (Date.now() > deadline) throw new Error('no workerregistered within 20 s')
      await sleep(10)
    }
}

const caller = registerWorker(url, { workerName: 'bench-caller', otel: { enabled: false } })
await connected(caller)

// Wait until the function is callable, then warm up.
const deadline = Date.now() + 20000
for (;;) {
  try {
    await caller.trigger({ function_id: 'bench::echo', payload: { i: -1, s: 'v-1' }, timeoutMs: 2000 })
    break
  } catch (err) {
    if (Date.now() > deadline) throw err
    await sleep(50)
  }
}
await runBulk(caller, { function_id: 'bench::echo', count: 2000, inflight: 64, timeoutMs })

const seq = await runBulk(caller, { function_id: 'bench::echo', count: seqCalls, inflight: 1, timeoutMs })
const par = await runBulk(caller, { function_id: 'bench::echo', count: parCalls, inflight: 64, timeoutMs })
process.stdout.write(`${JSON.stringify({ seq, par })}\n`)
await caller.shutdown()
process.exit(0)
}
