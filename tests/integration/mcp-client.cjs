// mcp-client.cjs -- the official MCP TypeScript SDK's Client against
// modelgate, for test-mcp.sh.
//
//   node mcp-client.cjs run PLAN stdio PROGRAM ARGS...
//   node mcp-client.cjs run PLAN http URL KEY
//   node mcp-client.cjs many N URL KEY
//
// run: connects (stdio: spawns PROGRAM; http: Streamable HTTP with the
// key as a Bearer header), lists the tools, then calls each of PLAN (a
// JSON file: [{"name", "arguments"}]) and prints one JSON object:
// {server, protocolVersion, tools: [tools/list entries], calls: [{name,
// arguments, result} or {name, arguments, error}]}.  Then closes.
// many: N clients at once over HTTP, each connecting and calling
// get_quota; prints {ok, failed, errors}.
"use strict";

const fs = require("node:fs");
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");
const {
    StreamableHTTPClientTransport,
} = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

function transport(kind, rest) {
    if (kind === "stdio") {
        return new StdioClientTransport({ command: rest[0], args: rest.slice(1), stderr: "inherit" });
    }
    if (kind === "http") {
        return new StreamableHTTPClientTransport(new URL(rest[0]), {
            requestInit: { headers: { Authorization: `Bearer ${rest[1]}` } },
        });
    }
    throw new Error(`unknown transport ${kind}`);
}

async function run(planFile, kind, rest) {
    const plan = JSON.parse(fs.readFileSync(planFile, "utf8"));
    const client = new Client({ name: "modelgate-test", version: "1.0.0" });
    await client.connect(transport(kind, rest));
    const out = {
        server: client.getServerVersion(),
        protocolVersion: client.transport.protocolVersion || null,
        capabilities: client.getServerCapabilities(),
        tools: (await client.listTools()).tools,
        calls: [],
    };
    for (const step of plan) {
        try {
            const result = await client.callTool({ name: step.name, arguments: step.arguments });
            out.calls.push({ name: step.name, arguments: step.arguments, result });
        } catch (e) {
            out.calls.push({ name: step.name, arguments: step.arguments, error: String(e.message || e) });
        }
    }
    try {
        await client.ping();
        out.ping = true;
    } catch (e) {
        out.ping = String(e.message || e);
    }
    await client.close();
    process.stdout.write(JSON.stringify(out) + "\n");
}

async function many(n, url, key) {
    const one = async () => {
        const client = new Client({ name: "modelgate-load", version: "1.0.0" });
        await client.connect(transport("http", [url, key]));
        const r = await client.callTool({ name: "get_quota", arguments: {} });
        await client.close();
        if (r.isError || !r.structuredContent || !Array.isArray(r.structuredContent.data)) {
            throw new Error(JSON.stringify(r).slice(0, 200));
        }
    };
    const results = await Promise.allSettled(Array.from({ length: n }, one));
    const errors = results.filter((r) => r.status === "rejected").map((r) => String(r.reason));
    process.stdout.write(JSON.stringify({
        ok: results.length - errors.length,
        failed: errors.length,
        errors: errors.slice(0, 5),
    }) + "\n");
}

const [mode, ...argv] = process.argv.slice(2);
const done = mode === "run" ? run(argv[0], argv[1], argv.slice(2))
    : mode === "many" ? many(Number(argv[0]), argv[1], argv[2])
        : Promise.reject(new Error("usage: mcp-client.cjs run|many ..."));
done.then(() => process.exit(0), (e) => {
    process.stderr.write(`mcp-client: ${e.stack || e}\n`);
    process.exit(1);
});
