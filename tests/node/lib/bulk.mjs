// Many calls with a bounded number in flight, each result checked against its input.
// Shared by the test driver and bench/roundtrip.sh.

import { performance } from 'node:perf_hooks'

function percentile(sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

/**
 * Calls `function_id` (an echo function) `count` times with at most `inflight` calls
 * outstanding. Payload `{i, s}`; a result is right when it carries the same `i` and `s`.
 * Returns counts (ok, wrong, lost = timed out, failed = other errors) and latencies in ms.
 */
export async function runBulk(worker, { function_id, count, inflight, timeoutMs = 10000 }) {
  const latencies = []
  const codes = {}
  let ok = 0
  let wrong = 0
  let lost = 0
  let failed = 0
  let next = 0
  const firstWrong = []

  async function lane() {
    while (next < count) {
      const i = next++
      const s = `v${i}`
      const started = performance.now()
      try {
        const result = await worker.trigger({ function_id, payload: { i, s }, timeoutMs })
        latencies.push(performance.now() - started)
        if (result && result.i === i && result.s === s) ok++
        else {
          wrong++
          if (firstWrong.length < 5) firstWrong.push({ i, result })
        }
      } catch (err) {
        const code = err?.code ?? 'unknown'
        codes[code] = (codes[code] ?? 0) + 1
        if (code === 'TIMEOUT') lost++
        else failed++
      }
    }
  }

  const started = performance.now()
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inflight, count)) }, lane))
  const elapsedMs = performance.now() - started
  latencies.sort((a, b) => a - b)
  return {
    count,
    inflight,
    ok,
    wrong,
    lost,
    failed,
    codes,
    first_wrong: firstWrong,
    elapsed_ms: elapsedMs,
    calls_per_s: (count / elapsedMs) * 1000,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
  }
}
