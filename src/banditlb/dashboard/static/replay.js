// A stored run rebuilt at any moment T (seconds since its first attempt), in the shape the
// run view draws: the same charts as the live page, from the stored attempts.

import { bucketQuantile, LATENCY_BOUNDS, WINDOW_S } from "./runview.js";

const TICKS = 240;

/** Index of the first element of sorted `values` greater than x. */
function upperBound(values, x) {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function bucketOf(ms) {
  const i = upperBound(LATENCY_BOUNDS, ms);
  return i > 0 && LATENCY_BOUNDS[i - 1] === ms ? i - 1 : i; // value <= bound, like the balancer
}

export class Replay {
  /** doc: the answer of /dashboard/api/runs/{id}/replay */
  constructor(doc) {
    const col = Object.fromEntries(doc.columns.map((name, i) => [name, i]));
    const rows = doc.rows;
    const t0 = rows.reduce((min, r) => Math.min(min, r[col.ts]), rows.length ? Infinity : 0);
    this.upstreams = doc.upstreams;
    this.truth = doc.truth;
    this.attempts = rows.map((r) => ({
      request: r[col.request_number], upstream: r[col.upstream], outcome: r[col.outcome],
      latency: r[col.latency_ms], t: r[col.ts] - t0,
    })).sort((a, b) => a.t - b.t);
    this.attemptTimes = this.attempts.map((a) => a.t);
    const byNumber = new Map();
    for (const a of this.attempts) {
      const r = byNumber.get(a.request) || { number: a.request, start: a.t, end: 0, attempts: 0,
        accepted: false };
      r.end = Math.max(r.end, a.t + a.latency / 1000);
      r.attempts += 1;
      r.accepted ||= a.outcome === "accepted";
      byNumber.set(a.request, r);
    }
    this.done = [...byNumber.values()].sort((a, b) => a.end - b.end);
    this.ends = this.done.map((r) => r.end);
    this.duration = this.done.length ? this.ends[this.ends.length - 1] : 0;
    const prefix = (f) => {
      const out = [0];
      for (const r of this.done) out.push(out[out.length - 1] + f(r));
      return out;
    };
    const { penalty_weight: weight, free_attempts: free } = doc;
    this.accepted = prefix((r) => (r.accepted ? 1 : 0));
    this.penalized = prefix((r) => Math.max(0, r.attempts - free));
    this.score = prefix((r) => (r.accepted ? 1 : 0) - weight * Math.max(0, r.attempts - free));
    this.oracle = doc.oracle ? prefix((r) => doc.oracle[r.number - 1] ?? 0) : null;
    this.latencyBucket = this.done.map((r) => bucketOf((r.end - r.start) * 1000));
    this.oracleNote = doc.oracle
      ? "oracle: the simulator's oracle strategy (it reads the true state) on the same " +
        "scenario, seed, request rate and count"
      : doc.oracle_note;
    this.truthNote = doc.truth ? "true rates: the scenario's, for the run's seed" : doc.truth_note;
  }

  trueRate(port, t) {
    const schedule = this.truth?.[String(port)];
    if (!schedule) return null;
    let p = null;
    for (const [from, value] of schedule) if (from <= t) p = value;
    return p;
  }

  /** The run view's model at T seconds. */
  modelAt(T) {
    const c = upperBound(this.ends, T);
    const ticks = [];
    for (let i = 0; i <= TICKS; i += 1) {
      const s = (T * i) / TICKS;
      const k = upperBound(this.ends, s);
      ticks.push({ t: s, requests: k, accepted: this.accepted[k], score: this.score[k],
        oracle: this.oracle ? this.oracle[k] : null });
    }
    const seen = upperBound(this.attemptTimes, T);
    const servers = this.upstreams.map((u) => ({ upstream: u.name, port: u.port, attempts: 0,
      accepted: 0, rate_limited: 0 }));
    for (let i = 0; i < seen; i += 1) {
      const a = this.attempts[i];
      const s = servers[a.upstream];
      s.attempts += 1;
      if (a.outcome === "accepted") s.accepted += 1;
      else if (a.outcome === "rate_limited") s.rate_limited += 1;
    }
    const counts = new Array(LATENCY_BOUNDS.length + 1).fill(0);
    for (let i = 0; i < c; i += 1) counts[this.latencyBucket[i]] += 1;
    const oracle = this.oracle ? this.oracle[c] : null;
    return {
      counters: { requests: c, accepted: this.accepted[c], penalized: this.penalized[c],
        rate_limited: servers.reduce((sum, s) => sum + s.rate_limited, 0), score: this.score[c],
        regret: oracle === null ? null : oracle - this.score[c] },
      ticks,
      // Live pages use 5 s; a short run gets a tenth of its length so the curve can move.
      windowS: Math.max(Math.min(WINDOW_S, this.duration / 10), (4 * T) / TICKS, 0.1),
      xLabel: "seconds since the run's first attempt",
      oracleNote: this.oracleNote,
      servers,
      latency: { bounds: LATENCY_BOUNDS, counts, p50: bucketQuantile(LATENCY_BOUNDS, counts, 0.5),
        p99: bucketQuantile(LATENCY_BOUNDS, counts, 0.99) },
    };
  }
}
