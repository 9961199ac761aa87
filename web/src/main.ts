// Entry point: wires data, state and views together.
