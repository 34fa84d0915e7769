/// The tool's version, written into every artifact's meta table and the manifest for provenance.
/// Whether a stage reruns is decided by its own version (`StageDefinition.version`), not this.
public let toolVersion = "0.2.0"
