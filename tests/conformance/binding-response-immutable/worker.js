export default {
  async fetch(request, env) {
    const answer = await env.CALLEE.fetch(request);
    let changed;
    try {
      answer.headers.set("x-added", "1");
      changed = "set";
    } catch (e) {
      changed = e instanceof TypeError ? "TypeError" : "other";
    }
    const copy = new Response(answer.body, answer);
    copy.headers.set("x-added", "1");
    return new Response(`binding's answer: ${changed}; copy: ${copy.headers.get("x-added")}`);
  },
};
