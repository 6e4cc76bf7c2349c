# The single-worker baseline: app.js alone behind the socket, no bindings, so the difference from
# chain.capnp is the cost of two service-binding hops.
# Run: workerd serve single.capnp [--socket-addr http=127.0.0.1:PORT]

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "app", worker = .app) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "app") ],
);

const app :Workerd.Worker = (
  modules = [ (name = "app.js", esModule = embed "app.js") ],
  compatibilityDate = "2024-09-23",
);
