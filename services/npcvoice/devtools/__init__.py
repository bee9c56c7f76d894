"""Tools for developing npcvoice (code generation, model preparation, checks); not used when serving."""
