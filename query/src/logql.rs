//! LogQL: a `nom` parser and an evaluator over [`sextant_storage::logs::LogSource`], answering
//! log queries (streams) and metric queries (vectors, matrices) as Loki does.
