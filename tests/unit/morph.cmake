# The OS-morphing engine (worker/morph): options, OS detection and plans on
# the fixture trees of tests/fixtures/morph, the text rewrites (fstab, grub,
# network), the undo journal with failure injection, the command runner.
if(TARGET ekmorph)
  foreach(name test_morph_options test_morph_plan test_morph_edit test_morph_journal)
    ek_unit_test(${name})
    target_link_libraries(${name} PRIVATE ekmorph)
  endforeach()
endif()
