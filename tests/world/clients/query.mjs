// node-postgres: connect (host may be a socket directory), run one statement, print the first column of each row.
import pg from "pg";

const [host, port, user, password, sql] = process.argv.slice(2);
const client = new pg.Client({ host, port: Number(port), user, database: "app", password: password || undefined });
await client.connect();
const result = await client.query({ text: sql, rowMode: "array" });
for (const row of result.rows) console.log(String(row[0]));
await client.end();
