"""The provider contract: what a provider is given and returns (`types`), and the `Provider` and
`BatchProvider` base classes it subclasses, each hook with its default (`provider`). Imports only
the foundations.
"""
