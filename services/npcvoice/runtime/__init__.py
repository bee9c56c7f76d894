"""The shared service runtime: every npcvoice service starts, logs, limits, authenticates, reports health
and metrics, and shuts down through this package, so that a service only supplies its servicer and engine."""
