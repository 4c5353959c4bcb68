"""The web console of `herd serve`: server-rendered pages at `/`, a little vanilla JavaScript
polling /console/... for live parts, no build step and nothing from a JavaScript registry.

Pages read everything through the app's one Api (scheduler/server/app.py), as the JSON API does,
so a later auth layer has one place to decide who sees what. See pages.py for the routes.
"""

from scheduler.server.console.pages import router

__all__ = ["router"]
