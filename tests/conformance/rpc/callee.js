import { WorkerEntrypoint } from "cloudflare:workers";

export default class extends WorkerEntrypoint {
  async fetch() {
    return new Response("the callee");
  }
  async greet(name) {
    return `hello ${name}`;
  }
  async fail() {
    throw new Error("boom from rpc");
  }
}
