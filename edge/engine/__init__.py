"""The engine: a scenario assembled into actors (topology), its clients (traffic), the fault
timeline, progressive rollouts, and the virtual-time run."""
