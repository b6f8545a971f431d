// A Worker that exposes its D1 binding (env.DB) in the shape of Cloudflare's D1 REST
// API, so the tests drive the store's HTTP client, the one users run, against a real
// local D1 (workerd's). Routes:
//   POST /client/v4/accounts/:account/d1/database/:database/query
//   body {"sql": ..., "params": [...]} or {"batch": [{"sql": ..., "params": [...]}, ...]}
// Answers as the REST API does: {"success", "errors", "messages", "result": [...]},
// one result per statement; a batch runs as one D1 batch (atomic).
const PATH = /^\/client\/v4\/accounts\/[^/]+\/d1\/database\/[^/]+\/query$/;

function reply(status, result, errors = []) {
  return Response.json(
    { success: errors.length === 0, errors, messages: [], result },
    { status },
  );
}

function statement(db, query) {
  const prepared = db.prepare(query.sql);
  return query.params && query.params.length ? prepared.bind(...query.params) : prepared;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== "POST" || !PATH.test(url.pathname)) {
      return reply(404, null, [{ code: 7000, message: "No route for that URI" }]);
    }
    if (request.headers.get("Authorization") !== `Bearer ${env.TOKEN}`) {
      return reply(401, null, [{ code: 10000, message: "Authentication error" }]);
    }
    let body;
    try {
      body = await request.json();
    } catch {
      return reply(400, null, [{ code: 7400, message: "The request is malformed" }]);
    }
    const queries = Array.isArray(body.batch) ? body.batch : [body];
    try {
      const results = await env.DB.batch(queries.map((q) => statement(env.DB, q)));
      return reply(
        200,
        results.map((r) => ({ results: r.results, success: r.success, meta: r.meta })),
      );
    } catch (error) {
      return reply(400, null, [{ code: 7500, message: String(error.message || error) }]);
    }
  },
};
