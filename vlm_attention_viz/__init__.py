"""Capture a vision-language model's attention, every layer and head, and view it in the browser."""
