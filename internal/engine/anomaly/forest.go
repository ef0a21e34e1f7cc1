package anomaly

import (
	"math"
	"math/rand/v2"
)

// ForestConfig sets how an isolation forest is trained. Zero values take
// the defaults of Liu, Ting and Zhou (2008): 100 trees of 256 samples.
type ForestConfig struct {
	Trees      int   // number of trees; default 100
	SampleSize int   // samples per tree (ψ); default 256, capped at the data size
	Seed       int64 // the same seed and samples give the same forest
}

// Forest is a trained isolation forest. Anomalies are few and different, so
// random axis-parallel splits isolate them in fewer steps than normal
// points; the score turns the mean path length into a number in (0, 1].
// A trained forest is read-only and Score is safe for concurrent use.
type Forest struct {
	dims  int
	psi   int
	cpsi  float64 // c(ψ): the mean path length of an unsuccessful BST search
	roots []int32
	nodes []node
	// The walking form, derived from nodes (see prepare): leaves loop to
	// themselves, so every tree is walked exactly depth steps without a
	// branch, and the trees' walks interleave.
	walk  []node
	leaf  []float64 // per node: a leaf's depth + c(size); 0 for inner nodes
	depth int       // the deepest leaf
}

// node is one split or leaf, stored flat so that scoring follows indices
// and never allocates.
type node struct {
	// split is the threshold of an inner node (values below go left); on a
	// leaf it holds c(size), the expected further depth of the points that
	// were not separated when the height limit stopped the tree.
	split   float64
	feature int32 // -1 on a leaf
	// right is the index of the right child; the left child always follows
	// its parent (trees are stored in pre-order), which keeps a node at 16
	// bytes so that 100 trees stay mostly in cache.
	right int32
}

// pathAdjust is c(n) = 2H(n-1) - 2(n-1)/n, the average path length of an
// unsuccessful search in a binary search tree of n points.
func pathAdjust(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	m := float64(n - 1)
	return 2*(math.Log(m)+0.5772156649015329) - 2*m/float64(n)
}

// NewForest trains a forest on samples, which must all have the same
// non-zero number of features.
func NewForest(samples [][]float64, cfg ForestConfig) (*Forest, error) {
	if len(samples) == 0 || len(samples[0]) == 0 {
		return nil, ErrNoSamples
	}
	dims := len(samples[0])
	for _, s := range samples {
		if len(s) != dims {
			return nil, ErrNoSamples
		}
	}
	if cfg.Trees <= 0 {
		cfg.Trees = 100
	}
	if cfg.SampleSize <= 0 {
		cfg.SampleSize = 256
	}
	psi := min(cfg.SampleSize, len(samples))
	f := &Forest{dims: dims, psi: psi, cpsi: pathAdjust(psi)}
	if f.cpsi == 0 {
		f.cpsi = 1 // a one-sample forest: every path is 0 and scores 1
	}
	b := builder{
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)),
		samples: samples,
		forest:  f,
		spread:  make([]int32, 0, dims),
		perm:    make([]int, len(samples)),
	}
	limit := int(math.Ceil(math.Log2(float64(psi))))
	for i := range b.perm {
		b.perm[i] = i
	}
	for range cfg.Trees {
		// Partial Fisher–Yates: the first psi entries are a sample without
		// replacement.
		for i := range psi {
			j := i + b.rng.IntN(len(b.perm)-i)
			b.perm[i], b.perm[j] = b.perm[j], b.perm[i]
		}
		idx := append([]int(nil), b.perm[:psi]...)
		b.constant = 0
		if len(idx) > 1 {
			b.constant = b.constantDims(idx)
		}
		f.roots = append(f.roots, b.grow(idx, 0, limit, 0))
	}
	_ = f.prepare() // a forest just grown is a set of trees
	return f, nil
}

// maxTreeDepth bounds a decoded tree. A trained one is at most
// ceil(log2 ψ) plus a split per constant feature deep: under 30 for any
// sample size and feature vector this package makes.
const maxTreeDepth = 128

// prepare derives the walking form from the nodes. A leaf becomes a node
// that every x leaves by its right edge (no value is below -Inf; NaN is not
// below anything) back to itself. Nodes reached twice (a decoded file whose
// trees share nodes) are ErrCorrupt: walking such a graph can take
// exponential time.
func (f *Forest) prepare() error {
	f.walk = make([]node, len(f.nodes))
	f.leaf = make([]float64, len(f.nodes))
	f.depth = 0
	copy(f.walk, f.nodes)
	type item struct{ i, depth int32 }
	stack := make([]item, 0, 64)
	seen := make([]bool, len(f.nodes))
	for _, r := range f.roots {
		stack = append(stack[:0], item{r, 0})
		for len(stack) > 0 {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[it.i] {
				return ErrCorrupt
			}
			seen[it.i] = true
			if it.depth > maxTreeDepth {
				// Scoring walks every tree to the deepest leaf of any: a
				// file with one long chain would make each decision slow.
				return ErrCorrupt
			}
			n := f.nodes[it.i]
			if n.feature < 0 {
				f.walk[it.i] = node{feature: 0, split: math.Inf(-1), right: it.i}
				f.leaf[it.i] = float64(it.depth) + n.split
				f.depth = max(f.depth, int(it.depth))
				continue
			}
			stack = append(stack, item{it.i + 1, it.depth + 1}, item{n.right, it.depth + 1})
		}
	}
	return nil
}

type builder struct {
	rng     *rand.Rand
	samples [][]float64
	forest  *Forest
	spread  []int32
	perm    []int
	// constant has bit d set when dimension d is the same in every sample
	// of the tree being grown.
	constant uint64
}

func (b *builder) grow(idx []int, depth, limit int, used uint64) int32 {
	at := int32(len(b.forest.nodes))
	b.forest.nodes = append(b.forest.nodes, node{feature: -1, split: pathAdjust(len(idx))})
	if depth >= limit || len(idx) <= 1 {
		return at
	}
	// Choose among the features that still separate these points, so that
	// duplicates end in a leaf instead of a chain of empty splits, and the
	// features constant in the whole tree sample not yet split on along
	// this path: a value the training data never varied (a new country,
	// night calls, in honest history) must still isolate a point that has
	// it, or the forest is blind to exactly what never happened.
	b.spread = b.spread[:0]
	for d := range b.forest.dims {
		lo, hi := b.samples[idx[0]][d], b.samples[idx[0]][d]
		for _, i := range idx[1:] {
			v := b.samples[i][d]
			lo, hi = min(lo, v), max(hi, v)
		}
		if hi > lo || b.constant&(1<<d) != 0 && used&(1<<d) == 0 {
			b.spread = append(b.spread, int32(d))
		}
	}
	if len(b.spread) == 0 {
		return at
	}
	d := b.spread[b.rng.IntN(len(b.spread))]
	if b.constant&(1<<d) != 0 {
		// A split that leaves every sample on one side and an empty leaf
		// on the other, for values below or above the constant.
		v := b.samples[idx[0]][d]
		used |= 1 << d
		if b.rng.IntN(2) == 0 {
			b.forest.nodes = append(b.forest.nodes, node{feature: -1}) // at+1: x < v
			right := b.grow(idx, depth+1, limit, used)
			b.forest.nodes[at] = node{feature: d, split: v, right: right}
			return at
		}
		b.grow(idx, depth+1, limit, used) // at+1: x ≤ v
		right := int32(len(b.forest.nodes))
		b.forest.nodes = append(b.forest.nodes, node{feature: -1})
		b.forest.nodes[at] = node{feature: d, split: math.Nextafter(v, math.Inf(1)), right: right}
		return at
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, i := range idx {
		v := b.samples[i][d]
		lo, hi = min(lo, v), max(hi, v)
	}
	split := lo + b.rng.Float64()*(hi-lo)
	if split <= lo {
		split = lo + (hi-lo)/2
	}
	// Partition: values below split first.
	n := 0
	for k, i := range idx {
		if b.samples[i][d] < split {
			idx[n], idx[k] = idx[k], idx[n]
			n++
		}
	}
	b.grow(idx[:n], depth+1, limit, used) // at+1
	right := b.grow(idx[n:], depth+1, limit, used)
	b.forest.nodes[at] = node{feature: d, split: split, right: right}
	return at
}

// constantDims returns a mask of the dimensions on which every sample of
// idx has the same value.
func (b *builder) constantDims(idx []int) uint64 {
	var mask uint64
	for d := range min(b.forest.dims, 64) {
		v, same := b.samples[idx[0]][d], true
		for _, i := range idx[1:] {
			if b.samples[i][d] != v {
				same = false
				break
			}
		}
		if same {
			mask |= 1 << d
		}
	}
	return mask
}

// Dims returns the number of features the forest was trained on.
func (f *Forest) Dims() int { return f.dims }

// Score returns the anomaly score of x: 2^(-E[h(x)]/c(ψ)). Around 0.5 or
// below is ordinary; towards 1 the point was isolated unusually fast. A
// missing feature (x shorter than Dims) reads as 0; NaN goes right at every
// split. It does not allocate.
func (f *Forest) Score(x []float64) float64 {
	if f == nil || len(f.roots) == 0 {
		return 0.5
	}
	var xs [64]float64 // x padded with zeros: a missing feature reads as 0
	copy(xs[:], x)
	if f.dims > len(xs) {
		return f.scoreSlow(x)
	}
	// Each walk is a chain of dependent loads from a node array larger
	// than the nearer caches; sixteen trees walked side by side, a level at
	// a time, overlap their cache misses, and a conditional move picks the
	// way (a coin toss to a branch predictor).
	var sum float64
	var cur [16]int32
	walk := f.walk
	for k := 0; k < len(f.roots); k += len(cur) {
		m := copy(cur[:], f.roots[k:])
		for range f.depth {
			for j := range m {
				i := cur[j]
				n := &walk[i]
				next := n.right
				if xs[n.feature&63] < n.split {
					next = i + 1
				}
				cur[j] = next
			}
		}
		for _, i := range cur[:m] {
			sum += f.leaf[i]
		}
	}
	return math.Exp2(-sum / float64(len(f.roots)) / f.cpsi)
}

// scoreSlow is Score for a forest of more than 64 features.
func (f *Forest) scoreSlow(x []float64) float64 {
	var sum float64
	for _, r := range f.roots {
		i := r
		for range f.depth {
			n := &f.walk[i]
			var v float64
			if int(n.feature) < len(x) {
				v = x[n.feature]
			}
			if v < n.split {
				i++
			} else {
				i = n.right
			}
		}
		sum += f.leaf[i]
	}
	return math.Exp2(-sum / float64(len(f.roots)) / f.cpsi)
}

const forestMagic, forestVersion = "TGIF", 1

// maxLeafAdjust bounds a decoded leaf's c(size).
const maxLeafAdjust = 64

// MarshalBinary encodes the trained forest.
func (f *Forest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 32+len(f.roots)*4+len(f.nodes)*14)
	b = append(b, forestMagic...)
	b = append(b, forestVersion)
	b = appendVarint(b, int64(f.dims))
	b = appendVarint(b, int64(f.psi))
	b = appendVarint(b, int64(len(f.roots)))
	b = appendVarint(b, int64(len(f.nodes)))
	for _, r := range f.roots {
		b = appendVarint(b, int64(r))
	}
	for _, n := range f.nodes {
		b = appendVarint(b, int64(n.feature))
		b = appendF64(b, n.split)
		if n.feature >= 0 {
			b = appendVarint(b, int64(n.right))
		}
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. It checks that every
// index is in range and every child comes after its parent (a left child
// right after it), so a damaged
// forest cannot loop or read out of bounds when scoring.
func (f *Forest) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	r.header(forestMagic, forestVersion)
	dims := r.count(1 << 16)
	psi := r.count(1 << 30)
	trees := r.count(len(data))
	nodes := r.count(len(data) / 9) // a node takes at least 9 bytes
	if r.err || dims == 0 || trees == 0 || nodes == 0 || psi == 0 {
		return ErrCorrupt
	}
	g := Forest{dims: dims, psi: psi, cpsi: pathAdjust(psi), roots: make([]int32, trees), nodes: make([]node, nodes)}
	if g.cpsi == 0 {
		g.cpsi = 1
	}
	for i := range g.roots {
		g.roots[i] = int32(r.count(nodes - 1))
	}
	for i := range g.nodes {
		n := &g.nodes[i]
		feat := r.varint()
		if feat < -1 || feat >= int64(dims) {
			return ErrCorrupt
		}
		n.feature = int32(feat)
		n.split = r.f64()
		if n.feature >= 0 {
			n.right = int32(r.count(nodes - 1))
			if int(n.right) <= i+1 {
				return ErrCorrupt
			}
		} else if !(n.split >= 0 && n.split <= maxLeafAdjust) {
			// A leaf holds c(size): never negative, and small (c(2^31) is
			// about 42); anything else would push scores out of (0, 1].
			return ErrCorrupt
		}
		if r.err {
			return ErrCorrupt
		}
	}
	if r.err || len(r.b) != 0 {
		return ErrCorrupt
	}
	if g.prepare() != nil {
		return ErrCorrupt
	}
	*f = g
	return nil
}
