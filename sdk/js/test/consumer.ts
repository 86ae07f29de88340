// A consumer of the published package, type-checked (never run) by tests/sdk/test_js_sdk.py:
// it imports "@semantest/client" by name, so through package.json `exports` and dist/*.d.ts.
// Each `@ts-expect-error` line must stay an error: the types reject what the hub would.
import {
  CancelledError, CommandFailedError, Hub, HubError, RateLimitedError, Worker,
  type ChannelMessage, type CommandContext, type Completed, type Result,
} from "@semantest/client";

declare module "@semantest/client" {
  interface CommandTypes {
    RESIZE: { params: { width: number; height: number }; data: { resized: boolean } };
  }
}

export async function script(apiKey: string): Promise<void> {
  const hub = await Hub.connect("http://localhost:3000", { apiKey, connectTimeout: 5_000 });

  const page = await hub.run("NAVIGATE", { url: "https://example.com" }, { timeout: 10_000 });
  const title: string = page.data.title;
  const shot = await hub.run("SCREENSHOT", {}, { onProgress: (p) => p.percent.toFixed(0) });
  const png: "image/png" = shot.data.mimeType;
  const resized = await hub.run("RESIZE", { width: 800, height: 600 });
  const ok: boolean = resized.data.resized;
  const success: true = page.success;
  const free: Completed<unknown> = await hub.run("ANY_OTHER", { anything: [1, "two"] }, { target: "chrome-1" });
  // @ts-expect-error NAVIGATE needs a url
  await hub.run("NAVIGATE", {});
  // @ts-expect-error RESIZE's width is a number
  await hub.run("RESIZE", { width: "800", height: 600 });
  // @ts-expect-error the timeout is milliseconds, a number
  await hub.run("ANY_OTHER", {}, { timeout: "10s" });

  const handle = hub.submit("WAIT", {}, { signal: AbortSignal.timeout(1_000), correlationId: "c-1" });
  const cancelled: boolean = await handle.cancel();
  try {
    await handle.result;
  } catch (error) {
    if (error instanceof CancelledError) console.log(error.commandId, cancelled);
    if (error instanceof RateLimitedError) console.log(error.retryAfter);
    if (error instanceof CommandFailedError || error instanceof HubError) {
      const code: string = error.code;
      const failed: Result | undefined = error.result;
      console.log(code, error.details, failed?.metadata.duration, failed?.error?.code);
    }
  }

  const session = await hub.createSession("nightly", { persistent: true });
  const token: string = await session.share(["read"], { expiresIn: 60_000 });
  // @ts-expect-error permissions are "read" | "write"
  await session.share(["admin"]);
  await session.run("NAVIGATE", { url: "https://example.com" });
  for await (const result of session.results()) console.log(result.id);
  const joined = await hub.joinSession(session.id, { shareToken: token });
  await joined.leave();

  for await (const message of hub.subscribe<{ n: number }>("news", { since: "0-0" })) {
    const n: number = message.message.n;
    const seen: ChannelMessage<{ n: number }> = message;
    console.log(n, seen.offset);
  }
  const offset: string = await hub.publish("news", { n: 1 });
  console.log(title, png, ok, success, free.id, offset);
  await hub.close();
}

export async function worker(token: string): Promise<void> {
  const worker = new Worker("http://localhost:3000", { token, extensionId: "js-1", maxConcurrency: 4 });
  worker
    .handle("NAVIGATE", async (ctx: CommandContext, params) => {
      const url: string = params.url;
      ctx.progress(50, "loading");
      ctx.signal.throwIfAborted();
      return { url, title: "t" };
    })
    // @ts-expect-error a NAVIGATE handler answers {url, title}
    .handle("NAVIGATE", async () => ({ url: 1 }))
    .handle("CUSTOM", (_ctx, params) => params.whatever);
  await worker.start();
  await worker.close();
}
