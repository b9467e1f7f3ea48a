//go:build !race

package faults_test

// raceEnabled is true when the tests run with -race; the processes under
// test are then built with it too.
const raceEnabled = false
