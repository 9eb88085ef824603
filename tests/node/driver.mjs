// Node test driver: one official `iii-sdk` worker, steered over stdin/stdout.
//
// Usage: node driver.mjs <engine ws url> [worker name]
//
// Protocol (one JSON object per line):
//   in : {"id": 1, "cmd": "<name>", ...args}
//   out: {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": {code, message}}
//   out: {"event": "<name>", ...}   (ready, invoked, ...)
// Commands run concurrently; replies may come back in any order.
// Everything the SDK logs goes to stderr so stdout carries only protocol lines.

import { randomUUID } from 'node:crypto'
import { createInterface } from 'node:readline'
import { registerWorker } from 'iii-sdk'
import { createChannel } from 'iii-sdk/helpers'
import { http } from '@iii-dev/helpers/http'
import { runBulk } from './lib/bulk.mjs'

for (const level of ['log', 'info', 'debug', 'warn']) {
  console[level] = (...args) => console.error(...args)
}

const url = process.argv[2] ?? process.env.III_URL
const workerName = process.argv[3] ?? process.env.III_WORKER_NAME ?? 'node-driver'
if (!url) {
  console.error('usage: node driver.mjs <engine ws url> [worker name]')
  process.exit(2)
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

function errorBody(err) {
  return {
    code: err?.code ?? 'driver_error',
    message: err?.message ?? String(err),
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// A position-dependent test text of `n` characters: "00000000|00000001|…" cut to length.
// tests/python/driver.py and the Rust tests build the same text.
function pattern(n) {
  const parts = []
  for (let i = 0; i * 9 < n; i++) parts.push(`${String(i).padStart(8, '0')}|`)
  return parts.join('').slice(0, n)
}

// What the tests check of a big text instead of echoing it back.
function summary(text) {
  if (typeof text !== 'string') return { not_a_string: typeof text }
  return {
    len: text.length,
    intact: text === pattern(text.length),
    head: text.slice(0, 18),
    tail: text.slice(-18),
  }
}

// `gate` handlers: they wait until the `release` command lets them go.
const gate = { active: 0, max: 0, entered: 0, waiting: [] }

// III_HEADERS (a JSON object) is sent with the upgrade, e.g. an Authorization header for a
// gateway listener.
const headers = process.env.III_HEADERS ? JSON.parse(process.env.III_HEADERS) : undefined
const worker = registerWorker(url, { workerName, invocationTimeoutMs: 30000, headers })
const triggers = new Map()
const bindings = new Map()

// Handler factories, selected by `kind` in the `register` command.
const kinds = {
  echo: () => async (input) => input,
  // Returns `spec.value` whatever the input (hooks, fixed answers).
  constant: (spec) => async () => spec.value ?? null,
  // An auth function: `spec.table` maps a bearer token to its AuthResult; anything else throws.
  auth_table: (spec) => async (input) => {
    emit({ event: 'auth', input })
    const header = input?.headers?.authorization ?? ''
    const token = header.startsWith('Bearer ') ? header.slice(7) : ''
    const result = spec.table?.[token]
    if (result === undefined) throw new Error('invalid token')
    return result
  },
  // A middleware: runs the target itself and wraps its answer with what it saw.
  middleware_wrap: () => async (input) => {
    emit({ event: 'middleware', input })
    const result = await worker.trigger({ function_id: input.function_id, payload: input.payload })
    return { via: 'middleware', context: input.context, result }
  },
  // A hook that records its input and answers `spec.value` (an object allows).
  hook: (spec) => async (input) => {
    emit({ event: 'hook', hook: spec.id, input })
    return spec.value ?? null
  },
  add: () => async (input) => ({ sum: input.a + input.b }),
  boom: () => async () => {
    throw new Error('kaboom')
  },
  // Announces the call, then answers after `input.ms` (default: one minute).
  slow: (spec) => async (input) => {
    emit({ event: 'invoked', function_id: spec.id, input })
    await sleep(input?.ms ?? 60000)
    return { slept: input?.ms ?? 60000 }
  },
  // Records a call (void calls included) and answers with what it saw.
  record: (spec) => async (input, metadata) => {
    emit({ event: 'invoked', function_id: spec.id, input, metadata: metadata ?? null })
    return { seen: input }
  },
  // http trigger handler: answers with the status/headers of the spec and echoes the request.
  http: (spec) => async (req) => ({
    status_code: spec.status ?? 200,
    headers: spec.headers ?? {},
    body: {
      method: req.method,
      path: req.path,
      path_params: req.path_params,
      query_params: req.query_params,
      headers: req.headers,
      body: req.body ?? null,
    },
  }),
  // Counts concurrent entries (see `gate_stats`), then waits for `release`.
  gate: (spec) => async () => {
    gate.active++
    gate.entered++
    gate.max = Math.max(gate.max, gate.active)
    emit({ event: 'invoked', function_id: spec.id, active: gate.active })
    try {
      await new Promise((resolve) => gate.waiting.push(resolve))
    } finally {
      gate.active--
    }
    return { status_code: 200, body: { released: true } }
  },
  // Answers with the pattern text of `input.bytes` characters.
  big: () => async (input) => pattern(input.bytes),
  // Answers with the summary of `input.blob`: big inputs, small answers.
  size: () => async (input) => summary(input.blob),
  // http trigger handler reading the raw body from `request_body`.
  http_body: () => async (req) => {
    const data = await req.request_body.readAll()
    return {
      status_code: 200,
      body: { body: req.body === undefined ? 'absent' : req.body, ...summary(data.toString('utf8')) },
    }
  },
  // http trigger handler streaming its response through the helper of @iii-dev/helpers.
  http_stream: (spec) =>
    http(async (_req, res) => {
      res.status(spec.status ?? 200)
      res.headers(spec.headers ?? { 'content-type': 'text/plain' })
      res.stream.write(Buffer.from('hello '))
      res.stream.end(Buffer.from('world'))
    }),
  // Reads a channel given as `input.reader`: text frames are collected, binary frames joined.
  channel_read: () => async (input) => {
    const messages = []
    input.reader.onMessage((msg) => messages.push(msg))
    const data = await input.reader.readAll()
    return { messages, bytes: data.length, text: data.toString('utf8') }
  },
  // Writes `input.text` into the channel given as `input.writer`, then closes it.
  channel_write: () => async (input) => {
    const bytes = Buffer.from(input.text)
    await new Promise((resolve, reject) => {
      input.writer.stream.on('error', reject)
      input.writer.stream.end(bytes, resolve)
    })
    return { written: bytes.length }
  },
}

async function sync() {
  // Frames of one connection are applied in order: once a function registered after the
  // earlier frames answers, the engine has applied everything sent before it.
  const id = `__sync::${randomUUID()}`
  const ref = worker.registerFunction(id, async () => 'synced')
  try {
    const answer = await worker.trigger({ function_id: id, payload: {}, timeoutMs: 10000 })
    if (answer !== 'synced') throw new Error(`sync call answered ${JSON.stringify(answer)}`)
  } finally {
    ref.unregister()
  }
}

const commands = {
  async register(msg) {
    for (const spec of msg.functions) {
      const make = kinds[spec.kind]
      if (!make) throw new Error(`unknown function kind ${spec.kind}`)
      const options = {}
      if (spec.description) options.description = spec.description
      if (spec.metadata) options.metadata = spec.metadata
      worker.registerFunction(spec.id, make(spec), options)
    }
    await sync()
    return { registered: msg.functions.map((f) => f.id) }
  },
  async register_trigger(msg) {
    const handle = worker.registerTrigger({
      type: msg.type,
      function_id: msg.function_id,
      config: msg.config,
      metadata: msg.metadata,
    })
    triggers.set(msg.key, handle)
    await sync()
    return { key: msg.key }
  },
  async unregister_trigger(msg) {
    const handle = triggers.get(msg.key)
    if (!handle) throw new Error(`no trigger ${msg.key}`)
    handle.unregister()
    triggers.delete(msg.key)
    await sync()
    return { key: msg.key }
  },
  // Provides a trigger type: bindings delivered by the engine are announced as events
  // (`trigger_registered` / `trigger_unregistered`) and kept for `fire`.
  async register_trigger_type(msg) {
    worker.registerTriggerType(
      { id: msg.trigger_type, description: msg.description ?? 'test trigger type' },
      {
        registerTrigger: async (binding) => {
          bindings.set(binding.id, binding)
          emit({ event: 'trigger_registered', trigger_type: msg.trigger_type, ...binding })
          if (binding.config?.reject) throw new Error('binding rejected by the provider')
        },
        unregisterTrigger: async (binding) => {
          bindings.delete(binding.id)
          emit({ event: 'trigger_unregistered', trigger_type: msg.trigger_type, ...binding })
        },
      },
    )
    await sync()
    return { trigger_type: msg.trigger_type }
  },
  // Fires every binding this provider holds, as SDK providers do: an ordinary call.
  async fire(msg) {
    const results = []
    for (const binding of bindings.values()) {
      const request = { function_id: binding.function_id, payload: msg.payload, timeoutMs: 10000 }
      if (binding.metadata) request.metadata = binding.metadata
      results.push(await worker.trigger(request))
    }
    return results
  },
  async sync() {
    await sync()
    return null
  },
  async trigger(msg) {
    const request = { function_id: msg.function_id, payload: msg.payload }
    if (msg.timeoutMs) request.timeoutMs = msg.timeoutMs
    if (msg.metadata) request.metadata = msg.metadata
    if (msg.void) request.action = { type: 'void' }
    const answer = (await worker.trigger(request)) ?? null
    return msg.summarize ? summary(answer) : answer
  },
  // Lets `count` waiting `gate` handlers go (all when absent), oldest first.
  async release(msg) {
    const n = msg.count ?? gate.waiting.length
    const go = gate.waiting.splice(0, n)
    for (const resolve of go) resolve()
    return { released: go.length }
  },
  async gate_stats() {
    return { active: gate.active, max: gate.max, entered: gate.entered, waiting: gate.waiting.length }
  },
  async bulk(msg) {
    return runBulk(worker, msg)
  },
  // Creates a channel, hands its reader to `function_id` and writes into it meanwhile.
  async channel_send(msg) {
    const channel = await createChannel(worker, msg.buffer_size)
    const call = worker.trigger({
      function_id: msg.function_id,
      payload: { reader: channel.readerRef },
      timeoutMs: msg.timeoutMs ?? 20000,
    })
    for (const text of msg.messages ?? []) channel.writer.sendMessage(text)
    const chunk = Buffer.from(msg.data ?? '')
    const repeat = msg.repeat ?? 1
    for (let i = 0; i < repeat; i++) {
      if (!channel.writer.stream.write(chunk)) {
        await new Promise((resolve) => channel.writer.stream.once('drain', resolve))
      }
    }
    await new Promise((resolve, reject) => {
      channel.writer.stream.on('error', reject)
      channel.writer.stream.end(resolve)
    })
    return { refs: { reader: channel.readerRef, writer: channel.writerRef }, answer: await call }
  },
  // Creates a channel, hands its writer to `function_id` and reads everything it writes.
  async channel_receive(msg) {
    const channel = await createChannel(worker, msg.buffer_size)
    const reading = channel.reader.readAll()
    const answer = await worker.trigger({
      function_id: msg.function_id,
      payload: { writer: channel.writerRef, text: msg.text },
      timeoutMs: msg.timeoutMs ?? 20000,
    })
    const data = await reading
    return { answer, text: data.toString('utf8') }
  },
  async shutdown() {
    await worker.shutdown()
    setTimeout(() => process.exit(0), 10)
    return null
  },
  // Leaves at once, without closing the socket politely.
  async exit() {
    process.exit(3)
  },
}

async function handle(line) {
  let msg
  try {
    msg = JSON.parse(line)
  } catch (err) {
    emit({ event: 'bad_command', line, error: String(err) })
    return
  }
  const command = commands[msg.cmd]
  if (!command) {
    emit({ id: msg.id, ok: false, error: { code: 'unknown_command', message: String(msg.cmd) } })
    return
  }
  try {
    const result = await command(msg)
    emit({ id: msg.id, ok: true, result: result ?? null })
  } catch (err) {
    emit({ id: msg.id, ok: false, error: errorBody(err) })
  }
}

async function main() {
  const deadline = Date.now() + 20000
  while (!worker.workerId) {
    if (Date.now() > deadline) {
      console.error('driver: no workerregistered within 20 s')
      process.exit(4)
    }
    await sleep(10)
  }
  await sync()
  emit({ event: 'ready', worker_id: worker.workerId, name: workerName })
  const rl = createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (line.trim()) handle(line)
  })
  // The test harness going away closes stdin: leave with it.
  rl.on('close', () => process.exit(0))
}

main().catch((err) => {
  console.error('driver failed', err)
  process.exit(5)
})
