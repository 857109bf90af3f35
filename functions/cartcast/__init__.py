"""cartcast: a serverless social media manager for e-commerce brands.

The package holds the domain; `functions/main.py` holds only the thin entry points.
Importing the package imports nothing heavy: each module pulls in its third-party
libraries itself, so a function pays only for the paths it runs.
"""
