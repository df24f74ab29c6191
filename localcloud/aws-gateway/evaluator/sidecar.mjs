// The aws-gateway's IAM decision sidecar: @cloud-copilot/iam-simulate (AGPL-3.0) behind a
// JSON-lines protocol, so the gateway runs it as a separate process and never links it.
//
// stdin, one request per line:  {"id": N, "simulation": <the library's Simulation>}
// stdout, one answer per line:  {"id": N, "ok": true, "decision": "Allowed"|"ExplicitlyDenied"|"ImplicitlyDenied",
//                                "grants": [...], "denials": [...], "ignoredContextKeys": [...]}
//                           or:  {"id": N, "ok": false, "error": {"message": "invalid.action", ...}}
// The first line out is {"ready":true}. Answers can come out of order (runSimulation is async):
// match them by id. The process ends when stdin closes and the last answer is written.
import { createInterface } from 'node:readline'
import { getDenialReasons, getGrantReasons, runSimulation } from '@cloud-copilot/iam-simulate'

const answer = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function handle(line) {
  let id = null
  try {
    const request = JSON.parse(line)
    id = request.id ?? null
    const r = await runSimulation(request.simulation, {})
    if (r.resultType === 'error') return answer({ id, ok: false, error: r.errors })
    // 'single' has one result; 'wildcard' (resource "*", e.g. for list actions) has one per
    // resource pattern: report the deciding statements of all of them.
    const results = r.resultType === 'single' ? [r.result] : r.results
    const analyses = results.map((res) => res.analysis).filter(Boolean)
    answer({
      id,
      ok: true,
      decision: r.overallResult,
      grants: analyses.flatMap((a) => getGrantReasons(a)),
      denials: analyses.flatMap((a) => getDenialReasons(a)),
      ignoredContextKeys: [...new Set(results.flatMap((res) => res.ignoredContextKeys ?? []))]
    })
  } catch (e) {
    // runSimulation throws on some inputs (e.g. a few condition keys): answer, never crash.
    answer({ id, ok: false, error: { message: 'sidecar.exception', detail: String(e?.stack ?? e) } })
  }
}

createInterface({ input: process.stdin, crlfDelay: Infinity }).on('line', (line) => {
  if (line.trim()) handle(line)
})
answer({ ready: true })
