// The http trigger behind bench/edge.sh: `GET /hello` answered by a Node worker through the
// official iii-sdk (from tests/node). Usage: node bench/edge-worker.mjs <engine ws url>;
// registers, prints "ready", serves until stdin closes.
import { registerWorker } from '../tests/node/node_modules/iii-sdk/dist/index.mjs'

for (const level of ['log', 'info', 'debug', 'warn']) console[level] = (...a) => console.error(...a)

const worker = registerWorker(process.argv[2], { workerName: 'bench-http', otel: { enabled: false } })
worker.registerFunction('bench::hello', async () => ({ status_code: 200, headers: {}, body: { ok: true } }))
worker.registerTrigger({ type: 'http', function_id: 'bench::hello', config: { api_path: '/hello', http_method: 'GET' } })
process.stdout.write('ready\n')
process.stdin.resume()
process.stdin.on('end', async () => {
  await worker.shutdown()
  process.exit(0)
})
