// The chain's last hop, and on its own the single-worker baseline: a constant answer, so that
// what is measured is the runtime and its bindings, not the Worker's own work.
export default {
  async fetch() {
    return new Response("Hello from app");
  },
};
