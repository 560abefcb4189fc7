// The two PyTorch module trees that name the VQ-VAE's tensors (../shared/SPEC.md section 7):
//   seed     the seed repository's `Model` (vancheeswaran/VQ-VAE): encoder.conv1.weight,
//            encoder.residual.layers.0.res_block.1.weight, pre_vq_conv.bias,
//            vq_vae.embedding.weight, decoder.trans_conv1.weight, ...
//   zalando  the zalando notebook's (and Sonnet-style ports'): _encoder._conv_1.weight,
//            _encoder._residual_stack._layers.0._block.1.weight, _pre_vq_conv.bias,
//            _vq_vae._embedding.weight, _decoder._conv_trans_1.weight, ...
// Inside the engine every tensor goes by its zalando name (VqVae.state); files may use either
// scheme, renamed one dotted component at a time. The seed has no EMA codebook; its scheme
// names the EMA buffers vq_vae.ema_cluster_size and vq_vae.ema_w (zalando: _ema_cluster_size,
// _ema_w).
// Platform-free.

export type NameScheme = 'seed' | 'zalando';
export const NAME_SCHEMES: readonly NameScheme[] = ['seed', 'zalando'];
/** What checkpoints are written with unless told otherwise: the seed is the reference. */
export const DEFAULT_NAMES: NameScheme = 'seed';

/** zalando component -> seed component; digits, `weight` and `bias` are shared. */
const SEED_OF: Record<string, string> = {
  _encoder: 'encoder',
  _decoder: 'decoder',
  _conv_1: 'conv1',
  _conv_2: 'conv2',
  _conv_3: 'conv3',
  _residual_stack: 'residual',
  _layers: 'layers',
  _block: 'res_block',
  _pre_vq_conv: 'pre_vq_conv',
  _vq_vae: 'vq_vae',
  _embedding: 'embedding',
  _conv_trans_1: 'trans_conv1',
  _conv_trans_2: 'trans_conv2',
  _ema_cluster_size: 'ema_cluster_size',
  _ema_w: 'ema_w',
};
const ZALANDO_OF: Record<string, string> = Object.fromEntries(Object.entries(SEED_OF).map(([z, s]) => [s, z]));
const SHARED = /^(\d+|weight|bias)$/;

/** An engine (zalando) name under `scheme`. */
export function toScheme(name: string, scheme: NameScheme): string {
  if (scheme === 'zalando') return name;
  return name
    .split('.')
    .map((c) => SEED_OF[c] ?? c)
    .join('.');
}

/** The engine (zalando) name of a name written under `scheme`, or null when it is not a name of that scheme. */
export function fromScheme(name: string, scheme: NameScheme): string | null {
  const out: string[] = [];
  for (const c of name.split('.')) {
    if (SHARED.test(c)) out.push(c);
    else if (scheme === 'seed' && ZALANDO_OF[c]) out.push(ZALANDO_OF[c]);
    else if (scheme === 'zalando' && SEED_OF[c]) out.push(c);
    else return null;
  }
  return out.join('.');
}

export interface SchemeMatch {
  scheme: NameScheme;
  /** A prefix removed from every name (DataParallel's 'module.'), or ''. */
  prefix: string;
  /** File name -> engine name, for the names of the scheme. */
  map: Map<string, string>;
  /** File names that do not belong to the scheme (for the caller to report as unexpected). */
  foreign: string[];
}

/**
 * Which scheme a state_dict's names are written in: the one most of them belong to (after
 * removing a 'module.' prefix that every name carries, as nn.DataParallel saves them); the
 * others come back as `foreign`. Throws, listing names, when none belongs to either scheme.
 */
export function detectScheme(names: readonly string[]): SchemeMatch {
  const prefix = names.length > 0 && names.every((n) => n.startsWith('module.')) ? 'module.' : '';
  const bare = names.map((n) => n.slice(prefix.length));
  const fits = NAME_SCHEMES.map((scheme) => ({ scheme, n: bare.filter((b) => fromScheme(b, scheme) !== null).length }));
  const best = fits[0].n >= fits[1].n ? fits[0] : fits[1];
  if (best.n === 0) {
    throw new Error(
      names.length === 0
        ? 'the state_dict is empty'
        : `the state_dict's names follow neither the seed repository's scheme (encoder.conv1.weight, vq_vae.embedding.weight, ...) ` +
            `nor the zalando notebook's (_encoder._conv_1.weight, _vq_vae._embedding.weight, ...): ` +
            `${names.slice(0, 12).join(', ')}${names.length > 12 ? `, ... (${names.length - 12} more)` : ''}`,
    );
  }
  const map = new Map<string, string>();
  const foreign: string[] = [];
  bare.forEach((b, i) => {
    const internal = fromScheme(b, best.scheme);
    if (internal === null) foreign.push(names[i]);
    else map.set(names[i], internal);
  });
  return { scheme: best.scheme, prefix, map, foreign };
}
