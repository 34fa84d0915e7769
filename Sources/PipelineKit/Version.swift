/// The tool's version: part of every stage fingerprint, so a new version reruns what it may compute
/// differently. Raise it when a stage's output for the same input changes.
public let toolVersion = "0.1.0"
