"""The provider contract: what a provider is given and returns (`types`), and the
`Provider` and `BatchProvider` protocols it implements. Imports only the foundations.
"""
