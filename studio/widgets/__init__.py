"""Shared widgets: small groups of Streamlit elements that several pages draw the same way."""
