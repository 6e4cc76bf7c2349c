# The seed chain on workerd: gateway -> AUTH (auth) -> APP (app), all in one process.
# Run: workerd serve chain.capnp [--socket-addr http=127.0.0.1:PORT]
# The address below is only a default: live_baseline.py replaces it by the socket's name
# ("http"), handing workerd a socket it has bound (--socket-fd http=FD).

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "gateway", worker = .gateway),
    (name = "auth", worker = .auth),
    (name = "app", worker = .app),
  ],
  # Only the gateway is public, as in the docs; auth and app have no socket.
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "gateway") ],
);

# A fixed compatibility date, so that a newer workerd does not change behaviour under us.
const gateway :Workerd.Worker = (
  modules = [ (name = "gateway.js", esModule = embed "gateway.js") ],
  compatibilityDate = "2024-09-23",
  bindings = [
    (name = "AUTH", service = "auth"),
    (name = "APP", service = "app"),
  ],
);

const auth :Workerd.Worker = (
  modules = [ (name = "auth.js", esModule = embed "auth.js") ],
  compatibilityDate = "2024-09-23",
  bindings = [ (name = "SECRET_TOKEN", text = "s3cret-token-0f9a") ],
);

const app :Workerd.Worker = (
  modules = [ (name = "app.js", esModule = embed "app.js") ],
  compatibilityDate = "2024-09-23",
);
