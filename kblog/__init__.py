"""The build service: posts read once into scenarios, their captures found or made,
judged, and the site built around them (`invoke build`, `verify`, `publish`)."""
