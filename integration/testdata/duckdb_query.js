// Runs SQL with DuckDB (@duckdb/node-api) for integration/archive_duckdb_test.go.
// stdin: {"jobs": [{"setup": ["SET ..."], "sql": "SELECT ..."}]}; each job gets a fresh
// in-memory database. stdout: one result per job, {"columns", "types", "rows"} or {"error"}.
// Timestamps are printed as microseconds since the epoch (UTC, whatever the session's
// TimeZone), big integers as strings, other values as DuckDB renders them.
const { DuckDBInstance } = require(process.env.DUCKDB_NODE_API || "@duckdb/node-api");

function plain(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "object" && typeof v.micros === "bigint") return v.micros.toString();
  if (typeof v === "object") return String(v);
  return v;
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const { jobs } = JSON.parse(input);
  const out = [];
  for (const job of jobs) {
    const instance = await DuckDBInstance.create(":memory:");
    const conn = await instance.connect();
    try {
      for (const s of job.setup || []) await conn.run(s);
      const r = await conn.runAndReadAll(job.sql);
      out.push({
        columns: r.columnNames(),
        types: r.columnTypes().map(String),
        rows: r.getRows().map((row) => row.map(plain)),
      });
    } catch (e) {
      out.push({ error: String(e && e.message ? e.message : e) });
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
