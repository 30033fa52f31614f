//! Server-rendered SVG charts.
