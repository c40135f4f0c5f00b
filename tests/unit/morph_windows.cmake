# Windows offline morphing (worker/morph/windows): hive edits read back with
# hivex on synthetic hives (an empty regf hive made by the test, filled with
# hivexregedit --merge from tests/fixtures/morph-windows/*.reg), a synthetic
# virtio-win tree and a synthetic system volume.
if(TARGET ekmorph_windows)
  ek_unit_test(test_morph_windows)
  target_sources(test_morph_windows PRIVATE emptyhive.c)
  target_link_libraries(test_morph_windows PRIVATE ekmorph_windows)
endif()
