{
  # The same sources as CMakeLists.txt, built by node-gyp so that `prebuildify --napi` can
  # make prebuilt binaries. libtorch's paths come from scripts/libtorch.js, as for cmake, but
  # no RPATH is linked in: the loader (scripts/libtorch.js preload) loads libtorch from wherever
  # the resolver finds it before requiring the addon. The fused ops' loops are built once per
  # instruction set as static libraries of their own (their flags apply to those files alone);
  # -fopenmp makes ATen's inline at::parallel_for use OpenMP there, on libtorch's own libgomp.
  "targets": [
    {
      "target_name": "torchgraph",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc') && !/^fused_ops_avx/.test(f)).map(f => 'native/' + f).join(' ')\")"
      ],
      "conditions": [
        [ "target_arch=='x64'", { "dependencies": [ "fused_ops_avx2", "fused_ops_avx512" ] } ]
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch.js --print include)"
      ],
      "libraries": [ "<!@(node scripts/libtorch.js --print ldflags-norpath)" ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=1" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20" ],
      "cflags_cc": [ "-std=c++20", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-fopenmp" ],
      "ldflags": [ "-fopenmp" ]
    },
    {
      # native/fused_ops_kernels.h for AVX2: only this file gets the instruction set's flags.
      "target_name": "fused_ops_avx2",
      "type": "static_library",
      "sources": [ "native/fused_ops_avx2.cc" ],
      "include_dirs": [ "<!@(node scripts/libtorch.js --print include)" ],
      "defines": [ "_GLIBCXX_USE_CXX11_ABI=1", "CPU_CAPABILITY=AVX2", "CPU_CAPABILITY_AVX2" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20" ],
      "cflags_cc": [ "-std=c++20", "-fexceptions", "-frtti", "-O2", "-fPIC", "-fopenmp", "-mavx2", "-mfma", "-mf16c" ]
    },
    {
      # native/fused_ops_kernels.h for AVX512: only this file gets the instruction set's flags.
      "target_name": "fused_ops_avx512",
      "type": "static_library",
      "sources": [ "native/fused_ops_avx512.cc" ],
      "include_dirs": [ "<!@(node scripts/libtorch.js --print include)" ],
      "defines": [ "_GLIBCXX_USE_CXX11_ABI=1", "CPU_CAPABILITY=AVX512", "CPU_CAPABILITY_AVX512" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20" ],
      "cflags_cc": [ "-std=c++20", "-fexceptions", "-frtti", "-O2", "-fPIC", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c" ]
    }
  ]
}
