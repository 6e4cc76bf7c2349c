import { WorkerEntrypoint } from "cloudflare:workers";

export default class extends WorkerEntrypoint {
  async fetch(request) {
    this.ctx.waitUntil(Promise.resolve());
    return new Response(`${this.env.GREETING}, ${new URL(request.url).pathname}`, { headers: { "x-greeting": this.env.GREETING } });
  }
}
