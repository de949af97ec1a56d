"""The docs site's build: the mkdocs hook (nav in course order, labs as pages), offline assets."""
