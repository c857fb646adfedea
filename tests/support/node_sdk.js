// Drives @segment/analytics-node (installed by `make install` from package.json) against
// an edge for tests/web/test_sdks.py. argv[2] is JSON: {host, writeKey, maxRetries,
// calls: [[method, params], ...]}. Every call goes into one batch (flushAt = the number of
// calls). Prints one JSON line: {results: [error text or null per call], attempts: [status
// per HTTP attempt], reasons: [statusText per attempt]}.
'use strict'
const { Analytics } = require('@segment/analytics-node')

async function main() {
  const spec = JSON.parse(process.argv[2])
  const analytics = new Analytics({
    writeKey: spec.writeKey,
    host: spec.host,
    maxRetries: spec.maxRetries,
    flushAt: spec.calls.length,
    flushInterval: 60000,
    httpRequestTimeout: 10000,
  })
  const attempts = []
  const reasons = []
  analytics.on('http_response', (r) => {
    attempts.push(r.status)
    reasons.push(r.statusText)
  })
  const results = spec.calls.map(
    ([method, params]) =>
      new Promise((resolve) =>
        analytics[method](params, (err) =>
          resolve(err ? String(err.message !== undefined ? err.message : err) : null)
        )
      )
  )
  await analytics.closeAndFlush({ timeout: 30000 })
  process.stdout.write(JSON.stringify({ results: await Promise.all(results), attempts, reasons }) + '\n')
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
