// Private: reachable only through the gateway's AUTH binding. SECRET_TOKEN is a text binding in
// the config, standing in for a Workers secret.
export default {
  async fetch(request, env) {
    if (request.headers.get("x-custom-token") === env.SECRET_TOKEN) {
      return new Response("Request allowed", { status: 200 });
    }
    return new Response("x-custom-token does not match, request not allowed", { status: 403 });
  },
};
