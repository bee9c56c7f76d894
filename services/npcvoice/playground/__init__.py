"""The writers' playground: a local web page to shape an NPC's persona and talk to it at once.

``npcvoice playground`` serves the page (static/, no build step, works offline) and bridges it to the
conversation gateway over gRPC: server.py holds the ASGI app (its conversations go through npcvoice.edge).
"""
