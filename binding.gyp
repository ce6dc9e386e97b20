{
  # The same sources as CMakeLists.txt, built by node-gyp so that `prebuildify --napi` can
  # make prebuilt binaries. libtorch's paths come from scripts/libtorch.js, as for cmake, but
  # no RPATH is linked in: the loader (scripts/libtorch.js preload) loads libtorch from wherever
  # the resolver finds it before requiring the addon.
  "targets": [
    {
      "target_name": "torchgraph",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).map(f => 'native/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch.js --print include)"
      ],
      "libraries": [ "<!@(node scripts/libtorch.js --print ldflags-norpath)" ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=1" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20" ],
      "cflags_cc": [ "-std=c++20", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-missing-field-initializers" ]
    }
  ]
}
