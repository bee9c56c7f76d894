"""Generated from protos/ by npcvoice.devtools.protogen. Do not edit."""
