"""Conversations around the reply path: dialogue state, small talk, slots, clarification."""
