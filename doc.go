// Package infomax is Deep InfoMax image features, trained and used from Go.
//
// Unsupervised image features by mutual-information maximisation, on
// TensorFlow. This root holds no code; its tests check the layout
// (docs/design.md).
//
// The packages, in the order data flows through them: config, exporter (with
// the Python exporter, pyexport/), run, train, runeval (encode, then eval
// scores and report writes), and for Go programs encoder and search; the
// commands are runner and embed. README.md is the manual.
package infomax
