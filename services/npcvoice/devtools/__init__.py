"""Tools for developing npcvoice itself (code generation, checks); not used when serving."""
