"""What every package shares: the error tree (`errors`), the settings (`settings`), and the wiring that
builds a running CiteQA from them (`wiring`). See docs/ARCHITECTURE.md."""
